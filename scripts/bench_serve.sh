#!/usr/bin/env bash
# `vectro serve` latency on loopback: single-row GETs at random rows, POSTs of 100 random
# rows, and single-query searches, over a rows × dims int8 container made with `vectro
# generate` + `compress`. Client-side wall time per request on one keep-alive connection.
# Usage: scripts/bench_serve.sh [rows] [dims] [requests]
# VECTRO=path/to/vectro uses that binary instead of building one. Each run appends to
# bench/runs/<date>-<host>/bench_serve.csv and bench_serve.md; see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
dims=${2:-384}
requests=${3:-2000}
. scripts/lib/bench_out.sh
bench_begin bench_serve "scripts/bench_serve.sh $rows $dims $requests"
csv=$(bench_csv bench_serve "started,host,rows,dims,codec,what,requests,p50_ms,p99_ms,max_ms,per_s")
if [ -z "${VECTRO:-}" ]; then cargo build --release --quiet; fi
v=${VECTRO:-target/release/vectro}
dir=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT
mkdir "$dir/served"
$v generate --rows "$rows" --dims "$dims" --out "$dir/x.npy" --quiet
$v compress --in "$dir/x.npy" --out "$dir/served/emb.vectro" --quiet --no-fsync > /dev/null
rm "$dir/x.npy"
$v serve "$dir/served" --port 0 > "$dir/out.txt" 2> "$dir/err.txt" &
pid=$!
for _ in $(seq 100); do grep -q http:// "$dir/out.txt" 2>/dev/null && break; sleep 0.1; done
addr=$(grep -o '127.0.0.1:[0-9]*' "$dir/out.txt")
echo "container: $rows rows × $dims dims, int8, $(stat -c %s "$dir/served/emb.vectro") bytes; server $addr"
python3 - "$addr" "$rows" "$dims" "$requests" "$csv" "$BENCH_STARTED" "$BENCH_HOST" <<'PY'
import http.client, json, random, sys, time
addr, rows, dims, n, csv, started, host = sys.argv[1:]
rows, dims, n = int(rows), int(dims), int(n)
host_, port = addr.split(":")
conn = http.client.HTTPConnection(host_, int(port))

def call(method, path, body=None):
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise SystemExit(f"{method} {path}: {r.status} {data[:300]!r}")
    return data

while True:  # the background verification must end before rows are served
    c = json.loads(call("GET", "/api/containers/emb"))
    if c["verify"]["state"] != "pending":
        print(f"verified in {c['verify'].get('seconds', 0):.2f} s: {c['verify']['state']}")
        break
    time.sleep(0.2)

rng = random.Random(7)
def run(what, count, make):
    reqs = [make() for _ in range(count)]
    for m, p, b in reqs[: min(20, count)]:  # warm-up, not timed
        call(m, p, b)
    lat = []
    t0 = time.perf_counter()
    for m, p, b in reqs:
        t = time.perf_counter()
        call(m, p, b)
        lat.append(time.perf_counter() - t)
    total = time.perf_counter() - t0
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, max(0, int(len(lat) * q + 0.999999) - 1))] * 1e3
    p50, p99, mx = pct(0.50), pct(0.99), lat[-1] * 1e3
    print(f"{what:<34} {count:>6} requests  p50 {p50:8.2f} ms  p99 {p99:8.2f} ms  max {mx:8.2f} ms  {count / total:8.0f}/s")
    with open(csv, "a") as f:
        f.write(f"{started},{host},{rows},{dims},int8,{what},{count},{p50:.3f},{p99:.3f},{mx:.3f},{count / total:.1f}\n")

run("GET 1 random row", n, lambda: ("GET", f"/api/containers/emb/rows/{rng.randrange(rows)}", None))
run("POST 100 random rows", max(1, n // 10),
    lambda: ("POST", "/api/containers/emb/rows", json.dumps({"rows": [rng.randrange(rows) for _ in range(100)]})))
def query():
    q = [rng.gauss(0, 1) for _ in range(dims)]
    return ("POST", "/api/containers/emb/search", json.dumps({"queries": [q], "k": 10}))
run("search 1 query k=10 (full scan)", max(1, n // 100), query)
def query_rescore():
    q = [rng.gauss(0, 1) for _ in range(dims)]
    return ("POST", "/api/containers/emb/search", json.dumps({"queries": [q], "k": 10, "rescore": 100}))
run("search 1 query k=10 rescore 100", max(1, n // 100), query_rescore)
PY
echo "machine: $(bench_machine)"
