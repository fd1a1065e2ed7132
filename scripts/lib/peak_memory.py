"""Peak memory of a command: max RSS as `/usr/bin/time -v` reports it, and peak anonymous
RSS (`RssAnon` of /proc/PID/status, sampled every 10 ms through time's child, since a fork
of Python itself would report Python's pages), with the wall seconds.

    python3 scripts/lib/peak_memory.py CMD [ARGS...]   # prints "max_rss_MiB anon_MiB seconds"
"""
import subprocess
import sys
import time


def measure(cmd):
    """Runs `cmd`; returns (max RSS bytes, peak anonymous RSS bytes, seconds). Raises
    CalledProcessError with the command's stderr when it fails."""
    t = time.perf_counter()
    p = subprocess.Popen(["/usr/bin/time", "-v", *cmd], stderr=subprocess.PIPE, text=True)
    anon = 0
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                for child in f.read().split():
                    with open(f"/proc/{child}/status") as g:
                        for line in g:
                            if line.startswith("RssAnon:"):
                                anon = max(anon, int(line.split()[1]) * 1024)
        except OSError:
            pass
        time.sleep(0.01)
    err = p.stderr.read()
    secs = time.perf_counter() - t
    if p.returncode != 0:
        raise subprocess.CalledProcessError(p.returncode, cmd, stderr=err)
    kb = next(int(line.split()[-1]) for line in err.splitlines() if "Maximum resident" in line)
    return kb * 1024, anon, secs


if __name__ == "__main__":
    try:
        rss, anon, secs = measure(sys.argv[1:])
    except subprocess.CalledProcessError as e:
        sys.exit(e.stderr)
    print(f"{rss / 2**20:.1f} {anon / 2**20:.1f} {secs:.2f}")
