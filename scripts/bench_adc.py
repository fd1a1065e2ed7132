#!/usr/bin/env python3
"""Times `vectro eval` on pq/opq containers: search by ADC over the codes (the default)
against exact search over the decoded rows (`--search exact-float`), alternating runs in
one session so that both see the same machine load. Standard library only.

    scripts/bench_adc.py --data embeddings.npy \
        --codecs pq:m=48 pq:m=96 opq:m=48 --metrics l2,ip,cos --queries 1000 --runs 5
    scripts/bench_adc.py --generate 200000 --codecs pq:m=48 --metrics l2 --runs 3

Prints, per codec and metric, the median wall time (`seconds` of the JSON report) and
the median CPU time (user + sys of the process) of each search, their ratios, and
recall@10, which must be the same for both (the script fails otherwise).

Each run appends every timed eval to bench/runs/<date>-<host>/bench_adc.csv and what it
prints to bench_adc.md there (BENCH_DIR overrides the directory; see bench/README.md).
"""

import argparse
import datetime
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time

STARTED = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
HOST = socket.gethostname().split(".")[0]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.environ.get("BENCH_DIR") or os.path.join(
    ROOT, "bench", "runs", f"{STARTED[:10]}-{HOST}")
CSV_HEADER = "started,host,data,codec,metric,search,run,seconds,cpu_s,recall10"


def say(line):
    """Prints a line and appends it to this run's bench_adc.md."""
    print(line)
    with open(os.path.join(BENCH_DIR, "bench_adc.md"), "a") as f:
        f.write(line + "\n")


def run(cmd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out, wall, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="target/release/vectro")
    ap.add_argument("--data", help="a float32 .npy (default: generate one)")
    ap.add_argument("--generate", type=int, default=0, help="rows of synthetic 384-d data")
    ap.add_argument("--codecs", nargs="+", default=["pq:m=48"])
    ap.add_argument("--metrics", default="l2")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="0: all cores")
    ap.add_argument("--workdir", default="target/bench_adc")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    os.makedirs(BENCH_DIR, exist_ok=True)
    csv_path = os.path.join(BENCH_DIR, "bench_adc.csv")
    if not os.path.exists(csv_path) or os.path.getsize(csv_path) == 0:
        with open(csv_path, "w") as f:
            f.write(CSV_HEADER + "\n")
    with open(os.path.join(BENCH_DIR, "bench_adc.md"), "a") as f:
        f.write(f"\n## {STARTED}: `scripts/bench_adc.py {' '.join(sys.argv[1:])}`\n\n"
                f"Host {HOST}: {os.cpu_count()} cores.\n\n")
    data = a.data
    if data is None:
        rows = a.generate or 200_000
        data = os.path.join(a.workdir, f"synthetic_{rows}.npy")
        if not os.path.exists(data):
            subprocess.run([a.bin, "generate", "--rows", str(rows), "--dims", "384",
                            "--out", data, "--quiet"], check=True)
    say(f"data {os.path.basename(data)}, {a.queries} sampled queries, {a.runs} alternating runs, "
          f"threads {a.threads or 'all'}, load average {os.getloadavg()[0]:.1f}")
    say(f"{'codec':<10} {'metric':<6} {'adc s':>8} {'float s':>8} {'wall x':>7} "
          f"{'adc cpu':>8} {'flt cpu':>8} {'cpu x':>6} {'R@10':>6}")
    for codec in a.codecs:
        name = os.path.splitext(os.path.basename(data))[0]
        comp = os.path.join(a.workdir, f"{name}_{codec.replace(':', '_').replace('=', '')}.vectro")
        if not os.path.exists(comp):
            subprocess.run([a.bin, "compress", "--in", data, "--out", comp, "--codec", codec,
                            "--quiet"], check=True)
        for metric in a.metrics.split(","):
            times = {"adc": [], "exact-float": []}
            cpus = {"adc": [], "exact-float": []}
            recall = {}
            for _ in range(a.runs):
                for search in ("adc", "exact-float"):
                    cmd = [a.bin, "eval", "--orig", data, "--comp", comp, "--metric", metric,
                           "--sample-queries", str(a.queries), "--k", "10", "--json",
                           "--threads", str(a.threads),
                           "--search", "auto" if search == "adc" else search]
                    out, _, cpu = run(cmd)
                    r = json.loads(out)
                    assert r["search"] == search, r["search"]
                    times[search].append(r["seconds"])
                    cpus[search].append(cpu)
                    recall.setdefault(search, r["recall"][0]["recall"])
                    with open(csv_path, "a") as f:
                        f.write(f"{STARTED},{HOST},{os.path.basename(data)},\"{codec}\",{metric},"
                                f"{search},{len(times[search])},{r['seconds']},{cpu:.3f},"
                                f"{r['recall'][0]['recall']}\n")
            if recall["adc"] != recall["exact-float"]:
                sys.exit(f"{codec} {metric}: recall@10 differs: {recall}")
            t = {s: statistics.median(v) for s, v in times.items()}
            c = {s: statistics.median(v) for s, v in cpus.items()}
            say(f"{codec:<10} {metric:<6} {t['adc']:8.3f} {t['exact-float']:8.3f} "
                  f"{t['exact-float'] / t['adc']:7.2f} {c['adc']:8.3f} {c['exact-float']:8.3f} "
                  f"{c['exact-float'] / c['adc']:6.2f} {recall['adc']:6.3f}")
    say(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
