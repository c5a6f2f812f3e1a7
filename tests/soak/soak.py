"""A bounded soak of interop_server (run it on an ASan build): clients in
processes of their own mix unary calls, streams, expiring deadlines and
client cancels; every few seconds one client is killed with SIGKILL while
its calls are in flight and a new one starts.  At the end the server must
have answered every surviving client's calls with the statuses their kinds
expect (0 unexpected), hold no call, handler or sub-task, be back at its
baseline of file descriptors, and exit 0 on SIGTERM (ASan reports make it
exit non-zero).

  /usr/bin/python3 tests/soak/soak.py --server=BUILD/server/interop_server \\
      --gen_dir=DIR --proto_dir=proto [--minutes=M] [--clients=N]
"""
import argparse
import os
import random
import re
import signal
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "server"))
import run_py  # noqa: E402


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--gen_dir", required=True)
    ap.add_argument("--proto_dir", required=True)
    ap.add_argument("--minutes", type=float, default=2)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--server_arg", action="append", default=[],
                    help="an extra argument for the server (repeatable)")
    a = ap.parse_args()
    run_py.gen_stubs(a.gen_dir, a.proto_dir)
    p, port = run_py.start_server(a.server, a.server_arg)
    client = [sys.executable, os.path.join(here, "soak_client.py"),
              "--gen_dir=" + a.gen_dir, "--port=" + port]
    failures = []
    results = []
    killed = 0
    seed = 0
    try:
        time.sleep(0.2)  # let the server's threads settle for the fd baseline
        base_fds = fds(p.pid)
        end = time.time() + a.minutes * 60
        procs = []
        while time.time() < end:
            while len(procs) < a.clients:
                seed += 1
                left = max(1.0, end - time.time())
                procs.append(subprocess.Popen(
                    client + ["--seconds=%.1f" % min(left, random.uniform(5, 20)),
                              "--seed=%d" % seed],
                    stdout=subprocess.PIPE, text=True))
            time.sleep(3)  # the pace of the kills, not a synchronisation
            victim = random.choice(procs)
            if victim.poll() is None:
                victim.send_signal(signal.SIGKILL)
                killed += 1
            for q in list(procs):
                if q.poll() is not None:
                    out = q.stdout.read()
                    procs.remove(q)
                    if q.returncode == 0:
                        results.append(out)
                    elif q.returncode != -signal.SIGKILL:
                        failures.append("client exited %d: %s" % (q.returncode, out[-500:]))
        for q in procs:
            out, _ = q.communicate(timeout=60)
            if q.returncode == 0:
                results.append(out)
            elif q.returncode != -signal.SIGKILL:
                failures.append("client exited %d" % q.returncode)
        # Quiet: every call over, every killed client's connection noticed.
        deadline = time.time() + 30
        while fds(p.pid) > base_fds and time.time() < deadline:
            time.sleep(0.1)  # polling the server's fd table, bounded
        now_fds = fds(p.pid)
        if now_fds > base_fds:
            failures.append("fds %d at the end, %d at the start" % (now_fds, base_fds))
    finally:
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=60)
    ok = sum(int(m.group(1)) for r in results for m in [re.search(r"ok=(\d+)", r)] if m)
    bad = sum(int(m.group(1)) for r in results for m in [re.search(r"unexpected=(\d+)", r)] if m)
    for r in results:
        for line in r.splitlines():
            if line.startswith("UNEXPECTED"):
                failures.append(line)
    m = re.search(r"demo stats: (.*)", out or "")
    counters = dict(kv.split("=") for kv in m.group(1).split()) if m else {}
    if counters.get("inflight") != "0" or counters.get("subtasks_inflight") != "0":
        failures.append("handlers or sub-tasks left: %s" % counters)
    if p.returncode != 0:
        failures.append("server exited %d (a sanitizer report?)" % p.returncode)
    print("soak: %.1f min, %d client runs finished, %d killed with calls in flight, "
          "%d calls ok, %d unexpected statuses, server exit %d"
          % (a.minutes, len(results), killed, ok, bad, p.returncode))
    for f in failures[:20]:
        print("FAIL: " + f)
    print("%d passed, %d failed" % (0 if failures else 1, 1 if failures else 0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
