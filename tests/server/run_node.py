"""ctest driver for the @grpc/grpc-js interop run and the Node http2
wire-level tests: installs tests/node's locked dependencies into the build
tree (npm ci, once), starts interop_server on 127.0.0.1 with an ephemeral
port, runs both Node scripts against it and stops the server by its PID.

  /usr/bin/python3 run_node.py --server=PATH --node_dir=SRC --work_dir=DIR
"""
import argparse
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_py import start_server, stop_server  # noqa: E402


def npm_ci(node_dir, work_dir):
    mods = os.path.join(work_dir, "node_modules")
    stamp = os.path.join(work_dir, "package-lock.json")
    src_lock = os.path.join(node_dir, "package-lock.json")
    if os.path.isdir(mods) and os.path.exists(stamp) and \
            open(stamp).read() == open(src_lock).read():
        return mods
    os.makedirs(work_dir, exist_ok=True)
    for f in ("package.json", "package-lock.json"):
        shutil.copy(os.path.join(node_dir, f), work_dir)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                   cwd=work_dir, check=True, timeout=300)
    return mods


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--node_dir", required=True)
    ap.add_argument("--work_dir", required=True)
    ap.add_argument("--proto_dir", required=True)
    a = ap.parse_args()
    env = dict(os.environ, NODE_PATH=npm_ci(a.node_dir, a.work_dir))
    p, port = start_server(a.server)
    rc = 0
    try:
        for script, extra in (("interop_client.js", ["--proto_dir=" + a.proto_dir]),
                              ("wire_tests.js", [])):
            r = subprocess.run(["node", os.path.join(a.node_dir, script),
                                "--server_port=" + port] + extra,
                               env=env, timeout=120)
            rc = rc or r.returncode
    finally:
        stop_server(p)
    return rc


if __name__ == "__main__":
    sys.exit(main())
