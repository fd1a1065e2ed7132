# Sourced by the benchmark scripts (from the repository root): where a run's data goes.
#
# Every run appends to bench/runs/<YYYY-MM-DD>-<hostname -s>/ (BENCH_DIR overrides it):
#   <script>.csv  raw rows, one header line, appended run after run;
#   <script>.md   what the script printed, under a heading naming the command and machine.
# bench_begin NAME: creates the directory, starts NAME.md's section and copies stdout to it.
# bench_csv NAME HEADER: prints the CSV's path, writing HEADER first if the file is new.
BENCH_DIR=${BENCH_DIR:-bench/runs/$(date -u +%Y-%m-%d)-$(hostname -s)}
BENCH_STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
BENCH_HOST=$(hostname -s)

bench_machine() {
  local cpu
  cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
  echo "$(nproc) cores${cpu:+ ($cpu)}, $(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 2^20}' /proc/meminfo 2>/dev/null) RAM, load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
}

bench_begin() { # NAME [COMMAND LINE]
  mkdir -p "$BENCH_DIR"
  {
    echo
    echo "## $BENCH_STARTED: \`${2:-$1}\`"
    echo
    echo "Host $BENCH_HOST: $(bench_machine)."
    echo
  } >> "$BENCH_DIR/$1.md"
  exec > >(tee -a "$BENCH_DIR/$1.md")
}

bench_csv() { # NAME HEADER
  local f="$BENCH_DIR/$1.csv"
  mkdir -p "$BENCH_DIR"
  [ -s "$f" ] || echo "$2" > "$f"
  echo "$f"
}
