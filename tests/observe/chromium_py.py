"""Headless Chromium loads /ctxz while calls are in flight.

  - interop_server --admin_port=0 on loopback;
  - python3-grpcio starts 6 demo.v1.Demo/Fanout calls (3 sub-tasks each,
    sleeping 60 s) with 30 s deadlines and x-request-ids "chrome-<n>",
    and waits (bounded) until /ctxz?format=json lists them running;
  - Debian's chromium (--headless, its own temporary profile) dumps the
    page's DOM: every in-flight request id must be there, in a request row
    with a deadline left between 0 and 30000 ms, with its context tree;
  - a screenshot of the page is saved as an artifact (not asserted on):
    ARTIFACT_DIR/ctxz.png;
  - the calls are cancelled, and the page then shows them among the
    recently ended, with cause client_cancel.

Every process started here is stopped by its PID.

  /usr/bin/python3 chromium_py.py --server=PATH --gen_dir=DIR
      --proto_dir=DIR --work_dir=DIR --artifact_dir=DIR
"""
import argparse
import html.parser
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "server"))
import run_py  # noqa: E402

N = 6


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def until(pred, timeout, what):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:
            last = e
        time.sleep(0.1)  # a poll interval, not a synchronisation
    raise SystemExit("timed out waiting for %s (last: %r)" % (what, last))


class Rows(html.parser.HTMLParser):
    """Collects the text of each <tr class="req"> / <tr class="recent">
    cell by cell."""

    def __init__(self):
        super().__init__()
        self.rows = []  # (class, [cell texts], {cell class: text})
        self.cur = None
        self.cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and a.get("class") in ("req", "recent"):
            self.cur = (a["class"], [], {})
        elif tag == "td" and self.cur is not None:
            self.cell = [a.get("class"), ""]

    def handle_endtag(self, tag):
        if tag == "td" and self.cur is not None and self.cell is not None:
            self.cur[1].append(self.cell[1])
            if self.cell[0]:
                self.cur[2][self.cell[0]] = self.cell[1]
            self.cell = None
        elif tag == "tr" and self.cur is not None:
            self.rows.append(self.cur)
            self.cur = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[1] += data


def chromium(args, profile, timeout=90):
    cmd = [shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-dev-shm-usage", "--no-first-run", "--user-data-dir=" + profile,
           "--window-size=1400,1000"] + args
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)  # chromium's helpers share its group
        p.wait(timeout=10)
        raise SystemExit("chromium did not finish within %d s" % timeout)
    if p.returncode != 0:
        raise SystemExit("chromium exited with %d" % p.returncode)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--gen_dir", required=True)
    ap.add_argument("--proto_dir", required=True)
    ap.add_argument("--work_dir", required=True)
    ap.add_argument("--artifact_dir", required=True)
    a = ap.parse_args()
    if shutil.which("chromium") is None:
        raise SystemExit("chromium not installed (scripts/deps.sh test)")
    run_py.gen_stubs(a.gen_dir, a.proto_dir)
    sys.path.insert(0, a.gen_dir)
    import grpc
    from demo.v1 import demo_pb2, demo_pb2_grpc

    os.makedirs(a.work_dir, exist_ok=True)
    os.makedirs(a.artifact_dir, exist_ok=True)
    profile = tempfile.mkdtemp(dir=a.work_dir)
    srv = subprocess.Popen([a.server, "--port=0", "--loops=2", "--admin_port=0"],
                           stdout=subprocess.PIPE, text=True)
    try:
        port = re.match(r"listening on port (\d+)", srv.stdout.readline()).group(1)
        admin = re.match(r"admin on port (\d+)", srv.stdout.readline()).group(1)
        url = "http://127.0.0.1:%s/ctxz" % admin
        ch = grpc.insecure_channel("127.0.0.1:" + port)
        demo = demo_pb2_grpc.DemoStub(ch)
        rids = ["chrome-%d" % i for i in range(N)]
        futs = [demo.Fanout.future(demo_pb2.FanoutRequest(tasks=3, sleep_ms=60000),
                                   timeout=30, metadata=[("x-request-id", r)])
                for r in rids]

        def running():
            z = json.loads(http_get(url + "?format=json"))
            live = {r["request_id"]: r for c in z["connections"] for r in c["requests"]
                    if r["state"] == "running" and len(r["contexts"]) >= 2}
            return all(r in live for r in rids)
        until(running, 20, "the calls on /ctxz")

        dom = chromium(["--dump-dom", url], profile)
        p = Rows()
        p.feed(dom)
        reqs = {row[2].get("rid"): row for row in p.rows if row[0] == "req"}
        for r in rids:
            if r not in reqs:
                raise SystemExit("%s not in the DOM:\n%s" % (r, dom[:3000]))
            left = float(reqs[r][2]["left"])
            if not 0 < left <= 30000:
                raise SystemExit("%s: deadline left %r ms" % (r, left))
            if "/demo.v1.Demo/Fanout" not in reqs[r][1]:
                raise SystemExit("%s: no method in %r" % (r, reqs[r][1]))
            if "running" not in reqs[r][1][5]:
                raise SystemExit("%s: state %r" % (r, reqs[r][1][5]))
            if reqs[r][1][6].count("live") < 2:
                raise SystemExit("%s: no context tree in %r" % (r, reqs[r][1][6]))
        print("DOM: %d in-flight requests with their deadlines and trees" % N)
        shot = os.path.join(a.artifact_dir, "ctxz.png")
        chromium(["--screenshot=" + shot, url], profile)
        print("screenshot: %s (%d bytes)" % (shot, os.path.getsize(shot))
              if os.path.exists(shot) else "screenshot: none written")

        for f in futs:
            f.cancel()
        ch.close()

        def ended():
            z = json.loads(http_get(url + "?format=json"))
            gone = {e["request_id"] for e in z["recent"] if e["cause"] == "client_cancel"}
            return all(r in gone for r in rids) and z["server"]["live_requests"] == 0
        until(ended, 20, "the cancelled calls among the recently ended")
        dom = chromium(["--dump-dom", url], profile)
        p = Rows()
        p.feed(dom)
        recent = [row for row in p.rows if row[0] == "recent"]
        for r in rids:
            if not any(row[1][2] == r and row[1][5] == "client_cancel" for row in recent):
                raise SystemExit("%s not among the recently ended" % r)
        print("DOM after the cancel: %d recently ended by client_cancel" % N)
        srv.send_signal(signal.SIGTERM)
        if srv.wait(timeout=20) != 0:  # under ASan: a leak or an error report
            raise SystemExit("interop_server exited with %d" % srv.returncode)
    finally:
        if srv.poll() is None:
            srv.send_signal(signal.SIGTERM)
            try:
                srv.wait(timeout=20)
            except subprocess.TimeoutExpired:
                srv.kill()
                srv.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
