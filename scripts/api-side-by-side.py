#!/usr/bin/env python3
"""Asks argus and a real Prometheus the same HTTP API questions and prints where they differ.

Both servers must scrape the same target for a while first, so that they hold the same series.
The setup used for docs/compatibility.md (all on loopback):

    # a target with gauges `m{x="a|b|c"}`, a counter `c_total{code}` and a histogram `h`,
    # served with Content-Type: text/plain; version=0.0.4
    prometheus --config.file=p.yml --storage.tsdb.path=/tmp/p --web.listen-address=127.0.0.1:19394
    argus server --config.file=p.yml --storage.tsdb.path=/tmp/a --web.listen-address=127.0.0.1:19395
    python3 scripts/api-side-by-side.py http://127.0.0.1:19395 http://127.0.0.1:19394

(`p.yml` scrapes the target every second.) Bodies are compared as parsed JSON (key order
ignored) when both are JSON, as text otherwise. Range queries look at the last 20 seconds, so
restarting either server shortly before shows up as missing steps. Differences that are
Prometheus 2.42 → 3.x changes are expected with the Debian package; see docs/compatibility.md.
"""

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def ask(base, path, body=None, content_type=None):
    request = urllib.request.Request(base + path, data=body.encode() if body is not None else None)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def normal(text):
    try:
        return json.dumps(json.loads(text), sort_keys=True)
    except ValueError:
        return text


def q(s):
    return urllib.parse.quote(s, safe="")


INSTANT = [
    'm', 'm{x=~"a|b"}', 'sum(m)', 'count by (x) (m)', 'histogram_quantile(0.9, h_bucket)',
    'topk(2, m)', '1/0', '-1/0', '0/0', '"foo"', 'vector(1)', 'scalar(m)', 'time()', 'm > bool 1',
    'label_replace(m, "y", "$1", "x", "(.*)")', 'sort_desc(m)', 'sort(m)', 'absent(nope)',
    'count_values("v", m)', 'quantile(0.5, m)', 'm{x="a"} + on(x) group_left m',
    'm * on() group_left m', 'sum(m) by (x) / ignoring(x) sum(m)', 'rate(m)', 'm[5m] + 1', 'foo{',
    '1e400', '0x1F', '-m', 'm and m{x="a"}', 'm or nope', 'm unless m{x="a"}', 'stddev(m)',
    'min(m) + max(m)', 'histogram_count(h_bucket)', 'clamp(m, 0, 2)', 'round(m, 0.3)',
    'predict_linear(m[5m], 60)', 'sum without (x) (m)', 'group(m)', 'm @ 100', 'm offset -1m',
    'absent_over_time(nope[1m])', 'changes(m[1m])', 'sgn(m)', 'label_join(m, "y", "-", "x", "job")',
    '1e-7', '1e21', '2^70', 'count(m[1m])', 'atan2(m, 1)', 'and(m)', 'topk(nan, m)',
    'sum by (le) (h_bucket)',
]

RANGE = [
    'm', 'sum(m)', 'm > 0', 'm > bool 0', 'abs(m)', 'avg_over_time(m[30s])', 'max_over_time(m[30s])',
    'quantile_over_time(0.5, m[30s])', 'stddev_over_time(m[30s])', 'last_over_time(m[30s])',
    'present_over_time(m[30s])', 'absent_over_time(nope[30s])', 'absent(m)', 'changes(m[30s])',
    'resets(c_total[30s])', 'deriv(m[30s])', 'rate(c_total[30s])', 'increase(c_total[30s])',
    'irate(c_total[30s])', 'delta(m[30s])', 'idelta(m[30s])', 'histogram_quantile(0.5, h_bucket)',
    'sort(m)', 'vector(time())', 'clamp_min(m, 0)', 'exp(m)', 'sqrt(m)', 'sin(m)', 'm offset 10s',
    'max_over_time(m[30s:5s])', 'topk(1, m)', 'count_values("v", m)', 'm unless on(x) m{x="a"}',
    'm or vector(1)', 'm * on(x) group_left(job) m', 'm ^ 2', 'm % 2', 'minute(vector(0))',
]


def requests(now):
    for e in INSTANT:
        yield f"/api/v1/query?query={q(e)}&time={now}", None, None
    for e in RANGE:
        yield f"/api/v1/query_range?query={q(e)}&start={now - 20}&end={now}&step=5", None, None
    form = "application/x-www-form-urlencoded"
    yield "/api/v1/query", f"query=vector(1)&time={now}", form
    yield f"/api/v1/query?query=vector(1)&time={now}", "query=vector(2)", form
    yield "/api/v1/series", "match[]=m", form
    for path in [
        "/api/v1/query?query=m&time=abc", "/api/v1/query?query=", "/api/v1/query",
        f"/api/v1/query_range?query=m&start={now}&end={now - 60}&step=15",
        f"/api/v1/query_range?query=m&start={now - 1000000}&end={now}&step=1",
        f"/api/v1/query_range?query=m&start={now}&end={now}&step=0",
        f"/api/v1/query_range?query=m&start={now}&end={now}",
        f"/api/v1/query?query=vector(1)&time={now}&timeout=abc",
        "/api/v1/series?match[]=m", "/api/v1/series", "/api/v1/series?match[]=",
        "/api/v1/series?match[]=" + q('{x=""}'), "/api/v1/series?match[]=" + q("sum(m)"),
        "/api/v1/labels", "/api/v1/labels?match[]=m", "/api/v1/label/x/values",
        "/api/v1/label/__name__/values", "/api/v1/metadata", "/api/v1/metadata?metric=m",
        "/api/v1/targets/metadata?metric=c_total", "/api/v1/targets/metadata?match_target=bad{",
        "/api/v1/format_query?query=sum(m)by(x)", "/api/v1/format_query?query=sum(",
        f"/api/v1/query_exemplars?query=m&start={now - 60}&end={now}",
        "/api/v1/labels?start=abc", "/api/v1/series?match[]=m&start=1&end=0",
    ]:
        yield path, None, None


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    argus, prometheus = sys.argv[1].rstrip("/"), sys.argv[2].rstrip("/")
    now = int(time.time()) - 2
    same = total = 0
    for path, body, content_type in requests(now):
        total += 1
        a = ask(argus, path, body, content_type)
        p = ask(prometheus, path, body, content_type)
        if a[0] == p[0] and normal(a[1]) == normal(p[1]):
            same += 1
            continue
        print("##", urllib.parse.unquote(path), body or "")
        print("  argus     ", a[0], a[1][:500])
        print("  prometheus", p[0], p[1][:500])
    print(f"same: {same} of {total}")


if __name__ == "__main__":
    main()
