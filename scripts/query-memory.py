#!/usr/bin/env python3
"""Per-query peak memory, argus next to Prometheus, on the shared bench harness.

Runs ../shared/bench/bench.py's remote-write workload unchanged (same data, same query
set, same servers, one run), but measures every query run by itself as well:

  before the query  write 5 to /proc/PID/clear_refs (the kernel resets VmHWM to the
                    current resident size) and read VmRSS;
  after it          read VmHWM.

VmHWM - VmRSS(before) is the resident memory the query added at its peak, in MiB, summed
over the server's process tree. Pass 0 of each query is a warm-up and is reported apart
(`query_first_peak_added_mib:NAME`); the others give `query_peak_added_mib:NAME`, next to
the usual `query_ms:NAME`. `query_first_file_added_mib:NAME` / `query_file_added_mib:NAME`
is the part that is file pages the query mapped in (RssFile after - before: mmapped block
and chunk files, which the kernel can take back from the page cache); the rest is heap.

What the figure means: memory the process had to take from the kernel for the query. A
heap that keeps freed memory (glibc's arenas, Go's heap before its scavenger returns it)
lets a repeated query reuse it, so the warm-up figure is the cold cost and the median the
repeated one. Both servers are measured the same way.

Arguments are bench.py's (see ../shared/bench/README.md); restarts are turned off. Example:

  python3 scripts/query-memory.py --tag qmem --series 100000 --interval 30s --block 30m \\
      --history 75m --measure 5m --query-runs 5 --queries bench/queries.json \\
      --server prometheus --server "argus=target/release/argus server ..."
"""

import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "bench"))
sys.path.insert(0, BENCH)

import bench  # noqa: E402  (the shared harness: ../shared/bench/bench.py)


def reset_hwm(pids):
    for p in pids:
        try:
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")
        except OSError as e:
            raise SystemExit(f"cannot reset the peak resident size of pid {p}: {e}")


def rss_file(pids):
    """Resident pages of file mappings (RssFile: mmapped block and chunk files), in bytes."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("RssFile:"):
                        total += int(line.split()[1]) * 1024
        except (OSError, IndexError, ValueError):
            pass
    return total


def run_queries(srv, queries, t_eval, runs, M, info):
    """bench.run_queries, plus the peak resident memory each query run added."""
    info["queries"] = {}
    for r in range(runs + 1):
        for q in queries:
            pids = bench.proc_tree(srv.proc.pid)
            reset_hwm(pids)
            _, rss0, _ = bench.proc_usage(pids)
            file0 = rss_file(pids)
            dt, series, points, err = srv.query(q, t_eval)
            _, _, hwm = bench.proc_usage(pids)
            added = max(0, hwm - rss0) / 2**20
            # The part of it that is file pages mapped in (still mapped after the query).
            file_added = max(0, rss_file(pids) - file0) / 2**20
            qi = info["queries"].setdefault(
                q["name"], {"expr": q["expr"], "type": q["type"], "series": series, "points": points, "errors": []}
            )
            if err:
                qi["errors"].append(err)
                bench.log(f"{srv.name}: query {q['name']} failed: {err[:200]}")
                continue
            if r == 0:
                M[f"query_first_ms:{q['name']}"] = [dt * 1000]
                M[f"query_first_peak_added_mib:{q['name']}"] = [added]
                M[f"query_first_file_added_mib:{q['name']}"] = [file_added]
            else:
                M.setdefault(f"query_ms:{q['name']}", []).append(dt * 1000)
                M.setdefault(f"query_peak_added_mib:{q['name']}", []).append(added)
                M.setdefault(f"query_file_added_mib:{q['name']}", []).append(file_added)
    for name, qi in info["queries"].items():
        ms = statistics.median(M.get("query_ms:" + name, [float("nan")]))
        mib = statistics.median(M.get("query_peak_added_mib:" + name, [float("nan")]))
        bench.log(f"{srv.name}: {name}: series={qi['series']} points={qi['points']} median={ms:.1f}ms peak+{mib:.1f}MiB")


def main():
    if not os.path.isfile(os.path.join(BENCH, "bench.py")):
        raise SystemExit(f"the shared bench harness is not at {BENCH}")
    bench.run_queries = run_queries
    argv = sys.argv[1:]
    if "--restarts" not in argv:
        argv += ["--restarts", "0"]
    sys.argv = [os.path.join(BENCH, "bench.py")] + argv
    bench.main()


if __name__ == "__main__":
    main()
