#!/usr/bin/env python3
"""ctxz -- the live context trees of a server, as text, from its admin
endpoint's /ctxz?format=json (rpc_server_enable_admin, --admin_port).

  demo/ctxz.py HOST:PORT [--rid SUBSTRING] [--name LABEL]

Prints every live request (or those whose x-request-id contains
SUBSTRING) with its context tree, then the matching recently ended ones
with their cause and the time from the end to every descendant done.
Exit status 0, or 1 when the endpoint cannot be read.  Python's standard
library only.
"""
import argparse
import json
import sys
import urllib.request


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    ap.add_argument("--rid", default="")
    ap.add_argument("--name", default="")
    ap.add_argument("--recent", action="store_true",
                    help="also list the recently ended requests")
    a = ap.parse_args()
    try:
        with urllib.request.urlopen("http://%s/ctxz?format=json" % a.addr,
                                    timeout=5) as r:
            z = json.loads(r.read().decode())
    except Exception as e:  # noqa: BLE001  (any failure: say it, exit 1)
        print("ctxz %s: %s" % (a.addr, e), file=sys.stderr)
        return 1
    name = a.name or a.addr
    live = [(c, r) for c in z["connections"] for r in c["requests"]
            if a.rid in r["request_id"]]
    print("%s: %d live request(s)%s" % (name, len(live),
          " matching %r" % a.rid if a.rid else ""))
    for c, r in live:
        left = r["deadline_left_ms"]
        print("  %s x-request-id=%s  age %.0fms  deadline %s  %s%s  (from %s)" % (
            r["method"], r["request_id"] or "-", r["age_ms"],
            "%.0fms left" % left if left is not None else "none",
            r["state"], "" if r["ctx"] == "live" else " / ctx " + r["ctx"] +
            " by " + r["cause"], c["peer"]))
        for n in r["contexts"]:
            what = "request" if n["depth"] == 0 else "derived"
            dl = n["deadline_left_ms"]
            print("    %s%s %-8s %s%s%s" % (
                "  " * n["depth"], n["id"], n["state"] if n["state"] == "live"
                else n["state"] + " by " + n["cause"], what,
                ", own deadline %.0fms left" % dl if n["own_deadline"] and dl is not None
                else "", ", %d children, %d afterfuncs" % (n["children"], n["afterfuncs"])
                if n["children"] or n["afterfuncs"] else ""))
    if a.recent or a.rid:
        ended = [e for e in z["recent"] if a.rid in e["request_id"]]
        for e in ended:
            print("  ended: %s x-request-id=%s  %s by %s after %.0fms; "
                  "every descendant done %.2fms later" % (
                      e["method"], e["request_id"], e["status"], e["cause"],
                      e["lived_ms"], e["drain_ms"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
