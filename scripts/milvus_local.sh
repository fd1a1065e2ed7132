#!/usr/bin/env bash
# A local Milvus standalone server, the one the `milvus` package on PyPI ships (etcd and
# storage embedded, data under target/), for the integration tests.
#
#   scripts/milvus_local.sh up      # start it; returns once it answers (or fails with its log)
#   scripts/milvus_local.sh down    # stop it and remove its data
#   scripts/milvus_local.sh status
#
# Needs the venv of scripts/test_integrations.sh (milvus, pymilvus). The server listens on
# 127.0.0.1:$VECTRO_MILVUS_PORT, by default the first free port from 19530 (another
# session's server is never reused); `up` prints it and writes it to $DIR/port.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VECTRO_PY_VENV:-target/py-venv}"
DIR="${VECTRO_MILVUS_DIR:-target/milvus-local}"
PIDFILE="$DIR/pid"

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case "${1:-}" in
up)
    if running; then
        echo "milvus: already running (pid $(cat "$PIDFILE"), port $(cat "$DIR/port"))"
        exit 0
    fi
    rm -rf "$DIR"
    mkdir -p "$DIR"
    PORT="${VECTRO_MILVUS_PORT:-$("$VENV/bin/python" -c '
import socket
for p in range(19530, 19630):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        s.close()
')}"
    echo "$PORT" >"$DIR/port"
    # Its own session, so that `down` stops the wrapper and the server it spawns together.
    setsid "$VENV/bin/milvus-server" --data "$DIR/server" --proxy-port "$PORT" \
        >"$DIR/server.log" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    # The wrapper outlives the server it spawns: watch the server itself (a live `milvus`
    # in our process group), which dies at once when a port it needs is taken (its etcd
    # peer port, 2380, is fixed: one such server per machine).
    server_alive() {
        ps -eo pgid=,stat=,comm= | awk -v g="$(cat "$PIDFILE")" \
            '$1 == g && $3 == "milvus" && $2 !~ /Z/ { found = 1 } END { exit !found }'
    }
    fail() {
        echo "milvus: $1; its log:" >&2
        tail -n 20 "$DIR/server.log" >&2 || true
        grep -h -E '\[(ERROR|FATAL)\]' "$DIR"/server/logs/milvus-stdout.log 2>/dev/null | tail -n 5 | cut -c1-300 >&2 || true
        "$0" down >/dev/null
        exit 1
    }
    start=$SECONDS
    while [ $((SECONDS - start)) -lt 180 ]; do
        running || fail "the server exited while starting"
        if [ $((SECONDS - start)) -ge 20 ] && ! server_alive; then
            fail "the server process died while starting"
        fi
        if "$VENV/bin/python" - "$PORT" <<'EOF' 2>/dev/null; then
import sys, warnings
warnings.simplefilter("ignore")
from pymilvus import connections, utility
connections.connect(uri=f"http://127.0.0.1:{sys.argv[1]}", timeout=2)
utility.get_server_version()
EOF
            echo "milvus: up on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"), data $DIR)"
            exit 0
        fi
        sleep 1
    done
    echo "milvus: not answering after 180 s; stopping it" >&2
    "$0" down
    exit 1
    ;;
down)
    if running; then
        pid="$(cat "$PIDFILE")"
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
        for _ in $(seq 1 10); do
            kill -0 -- "-$pid" 2>/dev/null || break
            sleep 1
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
        echo "milvus: stopped"
    else
        echo "milvus: not running"
    fi
    rm -rf "$DIR"
    ;;
status)
    if running; then echo "milvus: running (pid $(cat "$PIDFILE"), port $(cat "$DIR/port"))"; else
        echo "milvus: not running"
        exit 1
    fi
    ;;
*)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
