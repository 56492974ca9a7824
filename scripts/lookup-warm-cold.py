#!/usr/bin/env python3
"""How much of a point lookup's time depends on what the machine did just before it.

Times the harness's point lookup (Python urllib, one connection per request, as the shared
bench harness's client) on each server given as NAME=URL@TIME, in four situations:
  after_lookup      right after the same lookup (caches and threads warm),
  after_heavy       right after the harness's regex query over many series,
  after_heavy_2ms   the same with 2 ms of idleness in between,
  after_heavy_10ms  the same with 10 ms.
Servers take turns within each run. Prints medians in ms and each situation's ratio of the
first server to the second. TIME is the evaluation time in unix seconds (for a data
directory kept with --keep-data, `last_ts` / 1000 from its *-rw-measured.json).

  python3 scripts/lookup-warm-cold.py --runs 150 argus=http://127.0.0.1:19190@1796608110 \\
      prometheus=http://127.0.0.1:19191@1796607870
"""
import argparse
import importlib.util
import os
import statistics
import time

# The client, the queries and the server arguments of scripts/http-floor.py.
_spec = importlib.util.spec_from_file_location(
    "http_floor", os.path.join(os.path.dirname(os.path.abspath(__file__)), "http-floor.py"))
floor = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(floor)
get, HEAVY, LOOKUP = floor.get, floor.HEAVY, floor.LOOKUP

SITUATIONS = [("after_lookup", LOOKUP, 0.0), ("after_heavy", HEAVY, 0.0),
              ("after_heavy_2ms", HEAVY, 0.002), ("after_heavy_10ms", HEAVY, 0.010)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("servers", nargs="+", help="NAME=URL@TIME")
    args = ap.parse_args()
    servers = [(name, lambda e, base=base, t=t: floor.query_url(base, e, t))
               for name, base, t in floor.parse_servers(args.servers)]
    times = {(n, s): [] for n, _ in servers for s, _, _ in SITUATIONS}
    for _ in range(args.runs):
        for name, url in servers:
            for situation, before, idle in SITUATIONS:
                get(url(before))
                if idle:
                    time.sleep(idle)
                times[(name, situation)].append(get(url(LOOKUP)))
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, _ in servers:
        print(f"{name}: " + " ".join(f"{s}={med[(name, s)]:.3f}" for s, _, _ in SITUATIONS) + " ms")
    if len(servers) >= 2:
        a, b = servers[0][0], servers[1][0]
        print("ratio: " + " ".join(f"{s}={med[(a, s)] / med[(b, s)]:.2f}" for s, _, _ in SITUATIONS))


if __name__ == "__main__":
    main()
