#!/usr/bin/env bash
# Runs the whole test suite. On a fresh Debian machine it first installs what the interop
# tests talk to (the real Prometheus from Debian), so it works from a clean clone with
# ../shared beside it.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v prometheus >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing interop peers from Debian (prometheus)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "warning: 'prometheus' is not installed and cannot be installed here; the interop test will fail" >&2
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
