#!/usr/bin/env bash
# ctx_bench.sh -- libctx against Go 1.19's context, same machine, same run.
#
# Builds bench/ctx_bench (Release, -O2, libctx static) and the Go benchmark
# in bench/go_ctx (offline: GOPROXY=off, GOFLAGS=-mod=mod, caches under the
# build dir), then runs C and Go alternately REPS times:
#
#   one-core rows   taskset -c 1, Go with GOMAXPROCS=1
#   two-core rows   taskset -c 0,1, Go with GOMAXPROCS=2 (the 2-thread row,
#                   the shared-parent rows for 1, 2, 4, 8 threads, and the
#                   wake-up rows)
#
# and prints a markdown table of the medians (also written to
# bench/results/ctx.md), followed by the breadth-first/depth-first study
# (run once, two cores).  About 2 minutes on an idle 2-CPU machine.
#
# Usage: bench/ctx_bench.sh [--quick] [--out FILE]
#   --quick   ctx_bench --quick, Go -benchtime=20ms, one rep (smoke test)
# Env: BUILD (default build/h-bench), REPS (default 3).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(realpath -m "${BUILD:-$ROOT/build/h-bench}")
OUT=$ROOT/bench/results/ctx.md
QUICK=0
REPS=${REPS:-3}
CMDLINE="bench/ctx_bench.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case $1 in
    --quick) QUICK=1 ;;
    --out) OUT=$2; shift ;;
    *) echo "usage: $0 [--quick] [--out FILE]" >&2; exit 2 ;;
    esac
    shift
done

CFLAGS_Q=()
GO_BENCHTIME=0.3s
WAKE_REPS=2000
if [ "$QUICK" = 1 ]; then
    CFLAGS_Q=(--quick)
    GO_BENCHTIME=20ms
    WAKE_REPS=200
    REPS=1
fi

for cpu in 0 1; do
    if ! taskset -c "$cpu" true 2>/dev/null; then
        echo "ctx_bench.sh: CPU $cpu not available (needs CPUs 0 and 1)" >&2
        exit 1
    fi
done

echo "== building (Release, -O2) in $BUILD" >&2
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
    -DCTX_BUILD_RPC=OFF -DCTX_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j2 --target ctx_bench >/dev/null
CB=$BUILD/bench/ctx_bench

export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GO111MODULE=on
export GOCACHE=$BUILD/go-cache GOPATH=$BUILD/go-path
GT=$BUILD/go_ctx.test
(cd "$ROOT/bench/go_ctx" && go test -c -o "$GT" .)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ctx_bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

GO_SINGLE='^Benchmark(WithCancelBackground|WithCancelParent|WithTimeout|ValueDeepest|ValueMissing|ErrCancelled|DoneCheck|Fanout1000|Fanout100000|DeepChain10000)$'
START=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$(date +%s)

for rep in $(seq 1 "$REPS"); do
    echo "== rep $rep/$REPS: C, one core" >&2
    taskset -c 1 "$CB" "${CFLAGS_Q[@]}" --tsv --rows=single >"$TMP/c1.$rep"
    echo "== rep $rep/$REPS: Go, one core" >&2
    GOMAXPROCS=1 taskset -c 1 "$GT" -test.run '^$' -test.bench "$GO_SINGLE" \
        -test.benchmem -test.benchtime "$GO_BENCHTIME" >"$TMP/go1.$rep"
    echo "== rep $rep/$REPS: C, two cores" >&2
    taskset -c 0,1 "$CB" "${CFLAGS_Q[@]}" --tsv --rows=dual >"$TMP/c2.$rep"
    echo "== rep $rep/$REPS: Go, two cores" >&2
    GOMAXPROCS=2 taskset -c 0,1 "$GT" -test.run '^$' -test.bench '^Benchmark(Parallel2|Shared[1248])$' \
        -test.benchmem -test.benchtime "$GO_BENCHTIME" >"$TMP/go2.$rep"
    GOMAXPROCS=2 taskset -c 0,1 "$GT" -test.run '^$' -test.bench '^BenchmarkWakeup$' \
        -test.benchmem -test.benchtime "${WAKE_REPS}x" >>"$TMP/go2.$rep"
done

echo "== BFS/DFS study (two cores)" >&2
taskset -c 0,1 "$CB" "${CFLAGS_Q[@]}" --rows=order | sed -n '/^###/,$p' >"$TMP/order.md"
T1=$(date +%s)
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

GOVER=$(go version | awk '{print $3}')
CCVER=$(cc --version | head -1)
CPU=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)

mkdir -p "$(dirname "$OUT")"
python3 - "$TMP" "$REPS" >"$TMP/table.md" <<'EOF'
import re, statistics, sys
tmp, reps = sys.argv[1], int(sys.argv[2])

ROWS = [  # C name, Go benchmark, label
    ("cancel_bg", "WithCancelBackground", "WithCancel(Background) + cancel (+ release)"),
    ("cancel_parent", "WithCancelParent", "WithCancel(live cancelable parent) + cancel"),
    ("timeout", "WithTimeout", "WithTimeout(1h) + cancel"),
    ("value_deepest", "ValueDeepest", "Value: deepest key of a 10-deep chain"),
    ("value_missing", "ValueMissing", "Value: missing key (10-deep chain)"),
    ("err_cancelled", "ErrCancelled", "Err on a cancelled context"),
    ("done_check", "DoneCheck", "Done check on a live context"),
    ("fanout_1000", "Fanout1000", "cancel fan-out, 1,000 children (per child)"),
    ("fanout_100000", "Fanout100000", "cancel fan-out, 100,000 children (per child)"),
    ("deep_10000", "DeepChain10000", "cancel root of a 10,000-deep chain (per node)"),
    ("parallel2", "Parallel2", "2 threads create+cancel children of one parent (per op)"),
    ("shared1", "Shared1", "shared parent, 1 thread (per op, 2 CPUs)"),
    ("shared2", "Shared2", "shared parent, 2 threads (per op, 2 CPUs)"),
    ("shared4", "Shared4", "shared parent, 4 threads (per op, 2 CPUs)"),
    ("shared8", "Shared8", "shared parent, 8 threads (per op, 2 CPUs)"),
]

def read(path):
    try:
        return open(path).read().splitlines()
    except FileNotFoundError:
        return []

c = {}    # name -> list of (ns, B, allocs)
cw = {}   # wake name -> list of (p50, p99)
go = {}   # bench -> list of dict unit -> value
for r in range(1, reps + 1):
    for f in ("c1", "c2"):
        for line in read(f"{tmp}/{f}.{r}"):
            p = line.split("\t")
            if p[0] == "row":
                c.setdefault(p[1], []).append((float(p[2]), float(p[3]), float(p[4])))
            elif p[0] == "wake":
                cw.setdefault(p[1], []).append((float(p[2]), float(p[3])))
    for f in ("go1", "go2"):
        for line in read(f"{tmp}/{f}.{r}"):
            m = re.match(r"^Benchmark(\w+?)(-\d+)?\s+\d+\s+(.*)$", line)
            if not m:
                continue
            vals = re.findall(r"([\d.]+) (\S+)", m.group(3))
            go.setdefault(m.group(1), []).append({u: float(v) for v, u in vals})

med = statistics.median
def fmt(x):
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"

print("| row | Go ns/op | libctx ns/op | ratio (Go/libctx) | libctx B/op, allocs/op | Go B/op, allocs/op | goal (≥2×, ≤ Go's B and allocs) |")
print("| --- | ---: | ---: | ---: | --- | --- | --- |")
problems = []
for cn, gn, label in ROWS:
    cr, gr = c.get(cn, []), go.get(gn, [])
    if not cr or not gr:
        print(f"| {label} | {'n/a' if not gr else ''} | {'n/a' if not cr else ''} | | | | missing data |")
        continue
    cns = med(x[0] for x in cr)
    cb = med(x[1] for x in cr)
    ca = med(x[2] for x in cr)
    unit = "ns/node" if "ns/node" in gr[0] else "ns/op"
    gns = med(x[unit] for x in gr)
    gb = med(x.get("B/op", float("nan")) for x in gr)
    ga = med(x.get("allocs/op", float("nan")) for x in gr)
    ratio = gns / cns
    miss = []
    if ratio < 2:
        miss.append(f"speed {ratio:.2f}×")
    if cb > gb + 0.5:
        miss.append(f"{cb:.0f} B > {gb:.0f} B")
    if ca > ga + 0.005:
        miss.append(f"{ca:.2f} allocs > {ga:.0f}")
    goal = "met" if not miss else "MISSED: " + ", ".join(miss)
    if miss:
        problems.append(f"{label}: " + ", ".join(miss))
    print(f"| {label} | {fmt(gns)} | {fmt(cns)} | {ratio:.2f}× | {cb:.0f} B, {ca:.2f} | {gb:.0f} B, {ga:.0f} | {goal} |")

print()
print("Wake-up latency (one-way: from just before the signal to the waiter's first")
print("instruction after it; waiter blocked, on CPU 0; signaller on CPU 1):")
print()
print("| wake-up | p50 µs | p99 µs | p50 vs its floor |")
print("| --- | ---: | ---: | --- |")
gw = go.get("Wakeup", [])
if gw:
    print(f"| Go: goroutine blocked on <-ctx.Done(), cancel() (GOMAXPROCS=2) | "
          f"{med(x['p50-ns'] for x in gw)/1e3:.2f} | {med(x['p99-ns'] for x in gw)/1e3:.2f} | user-space hand-off, no floor |")
WAKE = [("wake_ctx_wait", "libctx: ctx_wait() (futex)", "wake_futex"),
        ("wake_ctx_fd", "libctx: poll() on ctx_done_fd() (eventfd)", "wake_eventfd"),
        ("wake_futex", "floor: bare futex wait/wake", None),
        ("wake_condvar", "floor: pthread condvar", None),
        ("wake_eventfd", "floor: eventfd + poll", None)]
for n, label, floor in WAKE:
    r = cw.get(n)
    if not r:
        continue
    p50, p99 = med(x[0] for x in r), med(x[1] for x in r)
    vs = ""
    if floor and cw.get(floor):
        f50 = med(x[0] for x in cw[floor])
        vs = f"{p50/f50:.2f}× the {floor[5:]} floor ({p50/1e3 - f50/1e3:+.2f} µs)"
    print(f"| {label} | {p50/1e3:.2f} | {p99/1e3:.2f} | {vs} |")

print()
print("<details><summary>per-rep values</summary>")
print()
for cn, gn, label in ROWS:
    cr = c.get(cn, [])
    gr = go.get(gn, [])
    unit = "ns/node" if gr and "ns/node" in gr[0] else "ns/op"
    print(f"- {cn}: libctx " + " / ".join(fmt(x[0]) for x in cr) +
          f" ns; Go {gn} " + " / ".join(fmt(x[unit]) for x in gr) + " ns")
for n, _, _ in WAKE:
    print(f"- {n}: p50/p99 µs " + ", ".join(f"{a/1e3:.1f}/{b/1e3:.1f}" for a, b in cw.get(n, [])))
print("- Go Wakeup: p50/p99 µs " + ", ".join(f"{x['p50-ns']/1e3:.1f}/{x['p99-ns']/1e3:.1f}" for x in gw))
print()
print("</details>")
if problems:
    print()
    print("Rows missing the goal: " + "; ".join(problems) + ".")
EOF

{
    echo "## libctx vs Go 1.19 context"
    echo
    echo "Measured $START by \`$CMDLINE\` (${REPS} rep(s), medians; $((T1 - T0)) s;"
    echo "load average $LOAD0 before, $LOAD1 after)."
    echo "Machine: $(nproc) CPU(s), $CPU, Linux $(uname -r); $CCVER; $GOVER."
    echo
    echo "One-core rows: \`taskset -c 1 ctx_bench --rows=single\` and"
    echo "\`GOMAXPROCS=1 taskset -c 1 go_ctx.test -test.bench ... -test.benchmem -test.benchtime $GO_BENCHTIME\`;"
    echo "two-core rows (2 threads, wake-up, shared parent): \`taskset -c 0,1\`, \`GOMAXPROCS=2\`."
    echo "Shared-parent rows: K threads (C) or K goroutines (Go) create and cancel children"
    echo "of one parent; this machine has $(nproc) CPU(s), so K > 2 measures threads preempted"
    echo "inside the registration, not more parallelism."
    echo "libctx B/op and allocs/op: requested bytes and calls of malloc/calloc/realloc"
    echo "(interposed in ctx_bench), counted during the timed part only, as Go's -benchmem."
    echo "Fan-out and chain rows time the cancel only (setup excluded on both sides), per node."
    echo
    cat "$TMP/table.md"
    echo
    cat "$TMP/order.md"
} >"$OUT"
cat "$OUT"
echo "== wrote $OUT" >&2
