#!/usr/bin/env bash
# Runs the whole test suite. On a fresh Debian machine it first installs what the interop
# tests talk to (the real Prometheus and exporters from Debian), so it works from a clean clone with
# ../shared beside it.
set -euo pipefail
cd "$(dirname "$0")/.."

peers="prometheus prometheus-node-exporter prometheus-pushgateway prometheus-blackbox-exporter"
missing=""
for p in $peers; do
  command -v "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing interop peers from Debian:$missing..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "warning:$missing not installed and cannot be installed here; the interop tests will fail" >&2
  fi
fi
# The Debian package starts a service on :9090 on some systems; the tests never use it, they
# start their own servers on free loopback ports.

if [ ! -d ../shared ]; then
  echo "error: ../shared (test corpora) must sit beside the checkout" >&2
  exit 1
fi

cargo build --workspace --all-targets --locked
cargo test --workspace --locked -- --test-threads 2
cargo bench --workspace --locked --no-run
