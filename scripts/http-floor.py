#!/usr/bin/env python3
"""How much of a cheap query's time is the HTTP client's and the kernel's.

Times, from Python's urllib as the shared bench harness's client (one connection per
request), right after a heavier query as in the harness's query order:
  floor    a C server that answers a fixed body without parsing (scripts/http_floor.c),
  healthy  GET /-/healthy,
  vector1  the instant query vector(1),
  lookup   the harness's point lookup,
on each server given as NAME=URL@TIME (TIME: the evaluation time in unix seconds; for a
server started on a data directory the harness kept with --keep-data, `last_ts` / 1000
from its *-rw-measured.json). Servers take turns within each run. Prints medians in ms.

  python3 scripts/http-floor.py --runs 100 argus=http://127.0.0.1:19090@1796596560 \\
      prometheus=http://127.0.0.1:19091@1796596320
"""
import argparse
import os
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
HEAVY = 'count(bench_metric_2{instance=~".*7"})'
LOOKUP = 'bench_metric_3{instance="target-000000"}'


def get(url):
    t0 = time.perf_counter()
    with OPENER.open(url, timeout=60) as r:
        r.read()
    return (time.perf_counter() - t0) * 1000


def query_url(base, expr, t):
    return base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": t})


def parse_servers(specs):
    """NAME=URL@TIME arguments as (name, base URL, time); loopback servers only."""
    out = []
    for spec in specs:
        name, rest = spec.split("=", 1)
        base, t = rest.rsplit("@", 1)
        if not base.startswith(("http://127.", "http://localhost")):
            raise SystemExit(f"{spec}: loopback servers only")
        out.append((name, base, t))
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("servers", nargs="+", help="NAME=URL@TIME")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "http_floor")
        subprocess.run(["gcc", "-O2", "-o", exe, os.path.join(HERE, "http_floor.c")], check=True)
        port = free_port()
        floor = subprocess.Popen([exe, str(port)])
        try:
            floor_url = f"http://127.0.0.1:{port}/api/v1/query"
            deadline = time.time() + 10
            while True:
                try:
                    get(floor_url)
                    break
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.05)
            servers = []
            for name, base, t in parse_servers(args.servers):

                def q(expr, base=base, t=t):
                    return query_url(base, expr, t)

                tests = {"floor": floor_url, "healthy": base + "/-/healthy", "vector1": q("vector(1)"), "lookup": q(LOOKUP)}
                servers.append((name, q(HEAVY), tests, {k: [] for k in tests}))
            # Servers take turns within each run, so a change in the machine's load falls on
            # both alike.
            for _ in range(args.runs):
                for _, heavy, tests, times in servers:
                    for k, url in tests.items():
                        get(heavy)
                        times[k].append(get(url))
            for name, _, _, times in servers:
                med = {k: statistics.median(v) for k, v in times.items()}
                print(f"{name}: " + " ".join(f"{k}={v:.3f}" for k, v in med.items()) + " ms")
        finally:
            floor.kill()
            floor.wait()


if __name__ == "__main__":
    main()
