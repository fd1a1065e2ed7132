#!/usr/bin/env bash
# `vectro serve` latency on loopback, over a rows × dims container per codec made with
# `vectro generate` + `compress`: single-row GETs at random rows, POSTs of 100 random rows
# (as JSON and as .npy), and single-query searches. Client-side wall time per request, one
# Python client on one keep-alive connection, after 20 untimed warm-up requests per kind
# (each answer is read whole inside the timing, and parsed and checked after it).
# Each codec's server is measured `rounds` times in a row, so a loaded machine's spread
# shows; the summary gives each kind's p99 in every round.
# Usage: scripts/bench_serve.sh [rows] [dims] [requests] [codecs] [rounds]
#   defaults: 1000000 384 2000 int8,int4 3
# VECTRO=path/to/vectro uses that binary instead of building one. Each run appends to
# bench/runs/<date>-<host>/bench_serve.csv and bench_serve.md; see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
dims=${2:-384}
requests=${3:-2000}
codecs=${4:-int8,int4}
rounds=${5:-3}
. scripts/lib/bench_out.sh
bench_begin bench_serve "scripts/bench_serve.sh $rows $dims $requests $codecs $rounds"
csv=$(bench_csv bench_serve "started,host,rows,dims,codec,round,what,requests,p50_ms,p99_ms,max_ms,per_s,load1")
if [ -z "${VECTRO:-}" ]; then cargo build --release --quiet; fi
v=${VECTRO:-target/release/vectro}
dir=$(mktemp -d)
pid=
stop() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    pid=
}
trap 'stop; rm -rf "$dir"' EXIT
$v generate --rows "$rows" --dims "$dims" --out "$dir/x.npy" --quiet
IFS=, read -ra list <<< "$codecs"
for codec in "${list[@]}"; do
    rm -rf "$dir/served"
    mkdir "$dir/served"
    $v compress --in "$dir/x.npy" --out "$dir/served/emb.vectro" --codec "$codec" --quiet --no-fsync > /dev/null
    $v serve "$dir/served" --port 0 > "$dir/out.txt" 2> "$dir/err.txt" &
    pid=$!
    for _ in $(seq 100); do grep -q http:// "$dir/out.txt" 2>/dev/null && break; sleep 0.1; done
    addr=$(grep -o '127.0.0.1:[0-9]*' "$dir/out.txt")
    echo
    echo "### $codec: $rows rows × $dims dims, $(stat -c %s "$dir/served/emb.vectro") bytes; server $addr"
    echo
    python3 -u - "$addr" "$rows" "$dims" "$requests" "$csv" "$BENCH_STARTED" "$BENCH_HOST" "$codec" "$rounds" <<'PY'
import http.client, json, os, random, sys, time
addr, rows, dims, n, csv, started, host, codec, rounds = sys.argv[1:]
rows, dims, n, rounds = int(rows), int(dims), int(n), int(rounds)
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

# Each answer is checked: the right count of rows, or of bytes for .npy.
def rows_json(k):
    return lambda d: len(json.loads(d)["rows"]) == k
def rows_npy(k):
    return lambda d: d[:6] == b"\x93NUMPY" and len(d) % 64 == (k * dims * 4) % 64 and len(d) > k * dims * 4
def hits(d):
    return len(json.loads(d)["results"][0]["rows"]) == 10

rng = random.Random(7)
p99s = {}
def run(rnd, what, count, make, check):
    reqs = [make() for _ in range(count)]
    for m, p, b in reqs[: min(20, count)]:  # warm-up, not timed
        call(m, p, b)
    lat = []
    t0 = time.perf_counter()
    answers = []
    for m, p, b in reqs:
        t = time.perf_counter()
        answers.append(call(m, p, b))
        lat.append(time.perf_counter() - t)
    total = time.perf_counter() - t0
    for (m, p, _), d in zip(reqs, answers):  # checked after the clock stops
        if not check(d):
            raise SystemExit(f"{m} {p}: a wrong answer: {d[:200]!r}")
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, max(0, int(len(lat) * q + 0.999999) - 1))] * 1e3
    p50, p99, mx = pct(0.50), pct(0.99), lat[-1] * 1e3
    load = os.getloadavg()[0]
    print(f"{what:<36} {count:>6} requests  p50 {p50:8.2f} ms  p99 {p99:8.2f} ms  max {mx:8.2f} ms  {count / total:8.0f}/s  load {load:5.1f}")
    p99s.setdefault(what, []).append(p99)
    with open(csv, "a") as f:
        f.write(f"{started},{host},{rows},{dims},{codec},{rnd},{what},{count},{p50:.3f},{p99:.3f},{mx:.3f},{count / total:.1f},{load:.2f}\n")

def batch(fmt):
    path = "/api/containers/emb/rows" + ("?format=npy" if fmt == "npy" else "")
    return lambda: ("POST", path, json.dumps({"rows": [rng.randrange(rows) for _ in range(100)]}))
def query(extra):
    def make():
        q = [rng.gauss(0, 1) for _ in range(dims)]
        return ("POST", "/api/containers/emb/search", json.dumps({"queries": [q], "k": 10, **extra}))
    return make

for rnd in range(1, rounds + 1):
    print(f"round {rnd}:")
    run(rnd, "GET 1 random row (JSON)", n,
        lambda: ("GET", f"/api/containers/emb/rows/{rng.randrange(rows)}", None), rows_json(1))
    run(rnd, "GET 1 random row (npy)", n,
        lambda: ("GET", f"/api/containers/emb/rows/{rng.randrange(rows)}?format=npy", None), rows_npy(1))
    run(rnd, "POST 100 random rows (JSON)", max(1, n // 10), batch("json"), rows_json(100))
    run(rnd, "POST 100 random rows (npy)", max(1, n // 10), batch("npy"), rows_npy(100))
    run(rnd, "search 1 query k=10 (full scan)", max(1, n // 100), query({}), hits)
    run(rnd, "search 1 query k=10 rescore 100", max(1, n // 100), query({"rescore": 100}), hits)
print()
print(f"p99 (ms) in each of the {rounds} rounds, {codec}:")
for what, v in p99s.items():
    print(f"  {what:<36} " + "  ".join(f"{x:8.2f}" for x in v))
PY
    stop
done
echo
echo "machine: $(bench_machine)"
