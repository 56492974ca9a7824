#!/bin/bash
# Times the harness's two heaviest range queries against one server binary: loads 100k series
# (75 minutes at 15s) with ../shared/bench's rwgen (build it first), then prints the median of
# three runs of each query. Usage: scripts/range-query-probe.sh path/to/argus
set -u
BIN=$1
rm -rf /tmp/rqdata
$BIN server --config.file="$(dirname "$0")/../examples/prometheus.yml" --storage.tsdb.path=/tmp/rqdata --web.listen-address=127.0.0.1:19393 --web.enable-remote-write-receiver --log.level=warn > /tmp/rq.log 2>&1 &
PID=$!
for i in $(seq 1 100); do curl -sf 127.0.0.1:19393/-/ready >/dev/null && break; sleep 0.1; done
"$(dirname "$0")/../../shared/bench/rwgen/target/release/rwgen" --url http://127.0.0.1:19393/api/v1/write --series 100000 --samples-per-series 10 --batch 2000 --concurrency 4 --interval 15s --start-ago 75m --duration 300s --stop-at-now > /tmp/rq-rw.out 2>&1
END=$(date +%s); START=$((END-3600))
for q in 'sum by (job) (rate(bench_metric_0[5m]))' 'histogram_quantile(0.9, sum by (le, job) (rate(bench_request_duration_seconds_bucket[5m])))'; do
  STEP=15; [[ $q == histogram* ]] && STEP=60
  for r in 1 2 3; do curl -s -o /dev/null -w "%{time_total}\n" --get --data-urlencode "query=$q" --data-urlencode "start=$START" --data-urlencode "end=$END" --data-urlencode "step=$STEP" http://127.0.0.1:19393/api/v1/query_range; done | sort -n | sed -n 2p | sed "s|^|$q: |"
done
kill $PID; wait $PID 2>/dev/null
