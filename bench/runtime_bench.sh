#!/usr/bin/env bash
# runtime_bench.sh -- libctx's worker runtime (ctx_pool, ctx_group) against
# goroutines and an errgroup-style group in Go 1.19, same machine, same run.
#
# Builds bench/runtime_bench (Release, -O2, libctx static) and the Go program
# in bench/go_runtime (offline: GOPROXY=off, GOFLAGS=-mod=mod, no
# dependencies), then runs C and Go alternately REPS times, both pinned to
# CPUs 0,1 (taskset -c 0,1; Go with GOMAXPROCS=2; the C pools default to
# N = 2 threads there), and prints a markdown table of the medians, also
# written to bench/results/runtime.md.
#
# Usage: bench/runtime_bench.sh [--quick] [--out FILE]
#   --quick   smaller runs, one rep (smoke test)
# Env: BUILD (default build/h-rbench), REPS (default 3).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build/h-rbench}
OUT=$ROOT/bench/results/runtime.md
QUICK=()
REPS=${REPS:-3}
CMDLINE="bench/runtime_bench.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case $1 in
    --quick) QUICK=(--quick); REPS=1 ;;
    --out) OUT=$2; shift ;;
    *) echo "usage: $0 [--quick] [--out FILE]" >&2; exit 2 ;;
    esac
    shift
done

if ! taskset -c 0,1 true 2>/dev/null; then
    echo "runtime_bench.sh: CPUs 0 and 1 are needed" >&2
    exit 1
fi

echo "== building (Release, -O2) in $BUILD" >&2
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
    -DCTX_BUILD_RPC=OFF -DCTX_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j2 --target runtime_bench >/dev/null
CB=$BUILD/bench/runtime_bench

export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GO111MODULE=on
export GOCACHE=$BUILD/go-cache GOPATH=$BUILD/go-path
GB=$BUILD/go_runtime
(cd "$ROOT/bench/go_runtime" && go build -o "$GB" .)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/runtime_bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

START=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$(date +%s)
for rep in $(seq 1 "$REPS"); do
    echo "== rep $rep/$REPS: C" >&2
    taskset -c 0,1 "$CB" "${QUICK[@]}" >"$TMP/c.$rep"
    echo "== rep $rep/$REPS: Go" >&2
    GOMAXPROCS=2 taskset -c 0,1 "$GB" "${QUICK[@]}" >"$TMP/go.$rep"
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
SECS=$(( $(date +%s) - T0 ))
GOVER=$(go version | awk '{print $3}')
CCVER=$(cc --version | head -1)
CPU=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)

python3 - "$TMP" "$REPS" >"$TMP/table.md" <<'EOF'
import statistics, sys
tmp, reps = sys.argv[1], int(sys.argv[2])

def load(prefix):
    runs = {}
    for r in range(1, reps + 1):
        for line in open(f"{tmp}/{prefix}.{r}"):
            name, value, unit = line.rstrip("\n").split("\t")
            runs.setdefault(name, []).append((float(value), unit))
    return {k: (statistics.median(v for v, _ in vs), vs[0][1])
            for k, vs in runs.items()}

c, go = load("c"), load("go")
ROWS = [
    ("latency_p50", "submit-to-start latency, one at a time, p50",
     "`ctx_pool_submit` -> task starts (the worker that ran the last task still polls)",
     "`go f()` -> f starts"),
    ("latency_p99", "submit-to-start latency, one at a time, p99", "", ""),
    ("cold_p50", "submit-to-start latency, after 200 us quiet, p50",
     "workers asleep: a futex wake", "`go f()` after `time.Sleep`"),
    ("cold_p99", "submit-to-start latency, after 200 us quiet, p99", "", ""),
    ("burst_p50", "submit-to-start latency, burst of 100k, p50",
     "queueing delay included", ""),
    ("burst_p99", "submit-to-start latency, burst of 100k, p99", "", ""),
    ("pool_tasks_s", "empty tasks/s, pool (1M tasks)",
     "`ctx_pool_submit`, one submitter, N=2", "`go` + WaitGroup"),
    ("group_tasks_s", "empty tasks/s, group (1M tasks)",
     "`ctx_group_go`", "errgroup-style `g.Go`"),
    ("fanout_cancel", "fan-out 10k blocked: the cancel call returns",
     "pool of 10,000 threads (64 KiB stacks)", "10,000 goroutines"),
    ("fanout_last", "fan-out 10k blocked: last task has returned",
     "each blocked in `ctx_wait`", "each blocked on `<-ctx.Done()`"),
    ("fanout_wait", "fan-out 10k blocked: group wait returns",
     "`ctx_group_wait`", "`g.Wait()`"),
    ("fanout_q_wait", "fan-out 10k, N=2 pool: group wait returns",
     "2 blocked + 9,998 queued (skipped at pickup)", "n/a"),
    ("cpu_one_2", "CPU per task, one at a time, pool of 2",
     "process CPU / tasks; growing pool; 20 us between tasks", "n/a"),
    ("cpu_one_64", "CPU per task, one at a time, pool of 64", "must match the row above", "n/a"),
    ("cpu_one_256", "CPU per task, one at a time, pool of 256", "must match the row above", "n/a"),
    ("cpu_burst_2", "CPU per task, bursts of 1,000, pool of 2", "", "n/a"),
    ("cpu_burst_64", "CPU per task, bursts of 1,000, pool of 64", "", "n/a"),
    ("cpu_burst_256", "CPU per task, bursts of 1,000, pool of 256", "", "n/a"),
    ("threads_2", "most threads, pool of 2 (bursts)", "growth under pure CPU bursts", "n/a"),
    ("starve_p50", "submit-to-start, pool of 2 with 4 tasks blocked, p50",
     "the pool grows past its blocked workers", "n/a"),
    ("starve_p99", "submit-to-start, pool of 2 with 4 tasks blocked, p99", "", "n/a"),
    ("wake400_p50", "cancel 200 contexts, 2 tasks parked in `ctx_wait` on each: last returns, p50",
     "400 pool threads", "n/a"),
    ("wake400_p99", "same, p99", "", "n/a"),
    ("wake400_floor_p50", "floor: 400 bare threads, 200 FUTEX_WAKEs: last runs, p50",
     "no libctx: the kernel's cost on this machine", "n/a"),
    ("wake400_floor_p99", "floor, p99", "", "n/a"),
    ("deadline_p50", "1 ms deadline -> `ctx_wait` returns, p50 after the deadline",
     "the waiter's own timer: it expires the context itself", "n/a"),
    ("deadline_p99", "same, p99", "", "n/a"),
]

def fmt(v, unit):
    if unit == "ns":
        return f"{v/1000:.1f} µs" if v >= 10000 else f"{v:.0f} ns"
    if unit == "us":
        return f"{v/1000:.1f} ms" if v >= 10000 else f"{v:.0f} µs"
    if unit == "tasks/s":
        return f"{v/1e6:.2f} M/s"
    if unit == "threads":
        return f"{v:.0f}"
    return f"{v} {unit}"

print("| measurement | libctx (C) | Go 1.19 | C / Go | C side | Go side |")
print("| --- | ---: | ---: | ---: | --- | --- |")
for key, label, cnote, gnote in ROWS:
    if key not in c:
        continue
    cv, unit = c[key]
    cs = fmt(cv, unit)
    if key in go:
        gv, _ = go[key]
        gs = fmt(gv, unit)
        if unit == "tasks/s":
            ratio = f"{cv/gv:.2f}x throughput"
        else:
            ratio = f"{cv/gv:.2f}x time" if gv > 0 else "-"
    else:
        gs, ratio = "n/a", "-"
    print(f"| {label} | {cs} | {gs} | {ratio} | {cnote} | {gnote} |")
EOF

{
    echo "# Worker runtime: libctx (ctx_pool, ctx_group) vs goroutines/errgroup"
    echo
    echo "Run: $START, $CPU, \`taskset -c 0,1\` (Go: GOMAXPROCS=2), $GOVER,"
    echo "$CCVER -O2.  Medians of $REPS alternating C/Go runs ($SECS s);"
    echo "load average before/after: $LOAD0 / $LOAD1 (shared machine)."
    echo "Reproduce: \`$CMDLINE\`"
    echo
    cat "$TMP/table.md"
    echo
    echo "Notes:"
    echo
    echo "- Latency is measured from just before the submit call to the first"
    echo "  line of the task, one task at a time (the submitter waits for each"
    echo "  to start).  A C pool worker that has just run a task polls the"
    echo "  queue for 10 us before it parks on its own futex word (at most"
    echo "  max(1, CPUs/2) poll at once, Go's bound on spinning Ms), so back-"
    echo "  to-back submits reach a polling worker; after 200 us of quiet the"
    echo "  workers sleep and a submit costs a futex wake and a thread switch."
    echo "  Go runs the new goroutine on the submitter's own P when the"
    echo "  submitter blocks (runnext), which no thread pool can do."
    echo "- 10,000 tasks blocked at once need 10,000 running tasks: a pool of"
    echo "  N = CPUs threads cannot hold them, so the fan-out rows use a pool"
    echo "  of 10,000 threads with 64 KiB stacks (created once, reused for"
    echo "  every round).  The cancel wakes 10,000 threads through one futex"
    echo "  and the kernel schedules them on 2 CPUs; Go readies 10,000"
    echo "  goroutines.  The last row is the server's configuration (N = CPUs"
    echo "  threads): the blocked tasks hold the workers and the queued ones"
    echo "  are skipped at pickup without running."
    echo "- Throughput: a C submit copies five words into a preallocated"
    echo "  ring (no allocation) for 2 long-lived workers; a Go statement"
    echo "  creates a goroutine.  \`ctx_group_go\` adds a malloc and the"
    echo "  group's mutex per task.  Burst latency is dominated by queueing"
    echo "  on both sides (100,000 tasks for 2 CPUs)."
    echo "- The Go errgroup is a minimal copy (WaitGroup + sync.Once +"
    echo "  cancel) because golang.org/x/sync is not installed; no limit is"
    echo "  used on either side."
    echo "- The load average after the run includes the C fan-out's own"
    echo "  10,000 runnable threads (a spike right after each cancel)."
    echo "- The rows up to fanout_q_wait use fixed pools (max_threads ="
    echo "  threads); the rows after them use growing pools (the default)."
    echo "  CPU per task is the whole process's CPU time (submitter included)"
    echo "  divided by the tasks; it must not depend on the pool's size: a"
    echo "  task wakes the most recently parked thread, and only when no"
    echo "  thread is polling or on its way."
    echo "- wake400: 400 threads woken on $(nproc) CPUs cost what the floor row"
    echo "  costs (kernel wake-ups and switches); the way under it is not to"
    echo "  park a thread per sub-task (ctx_after_func, see cancel_latency's"
    echo "  events style)."
} >"$OUT"
cat "$OUT"
