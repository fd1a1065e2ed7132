# Sourced by the scripts that need a Python venv or a Debian package. Nothing is assumed on
# the machine but python3 and cargo; what only Debian packages provide (python3-venv,
# chromium, qemu) is installed with apt-get when running as root.

# apt_install PKG...: installs the Debian packages PKG (needs root and apt-get; returns 1
# with a message naming them otherwise).
apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "needs the Debian packages: $* (apt-get install $*, as root)" >&2
        return 1
    fi
}

# make_venv DIR [PIP-SPEC...]: a venv at DIR made with $PYTHON (default python3), Debian's
# python3-venv installed first if the interpreter lacks it, then PIP-SPEC installed into it
# from PyPI (quietly; already satisfied requirements cost a second).
make_venv() {
    local venv=$1 py="${PYTHON:-python3}"
    shift
    if ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
        if ! "$py" -m venv "$venv" 2>/dev/null; then
            # Debian's python3 lacks venv and ensurepip until python3-venv is installed.
            apt_install python3-venv || { echo "cannot create a venv with $py" >&2; return 1; }
            rm -rf "$venv"
            "$py" -m venv "$venv"
        fi
    fi
    if [ $# -gt 0 ]; then
        "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@"
    fi
}

# faiss_venv: the venv of the scripts that run faiss beside vectro (target/faiss-venv, with
# faiss-cpu and numpy from PyPI); prints its directory. Made on first use only.
faiss_venv() {
    local venv=target/faiss-venv
    if ! "$venv/bin/python" -c "import faiss, numpy" 2>/dev/null; then
        make_venv "$venv" faiss-cpu numpy >&2
    fi
    echo "$venv"
}
