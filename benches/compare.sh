#!/bin/bash
# Interleaved rounds against another build of clinit (benches/README.md,
# "Against main before issue 10"): in each round, for each mode, the `rss`
# bench (start, stop, RSS at 1,000 children) and then `respawn_after_kill9`.
# Modes: base (the other build, $BASE), cg (this tree's release build,
# default cgroup mode), pg (this tree's build with --no-cgroups).
#
# Usage: benches/compare.sh BASE_CLINIT [ROUNDS] [OUT]
# Build first: cargo build --release --bin clinit && cargo bench --no-run --bench rss --bench daemon
set -u
cd "$(dirname "$0")/.."
BASE=${1:?usage: benches/compare.sh BASE_CLINIT [ROUNDS] [OUT]}
N=${2:-3}
OUT=${3:-/dev/stdout}
newest() { ls -t target/release/deps/"$1"-* | grep -v '\.d$' | head -1; }
RSS=$(newest rss)
DAEMON=$(newest daemon)
NEW=$PWD/target/release/clinit
for r in $(seq 1 "$N"); do
  for mode in base cg pg; do
    case $mode in
      base) bin=$BASE; args="" ;;
      cg) bin=$NEW; args="" ;;
      pg) bin=$NEW; args="--no-cgroups" ;;
    esac
    echo "ROUND $r MODE $mode load $(cut -d' ' -f1-3 /proc/loadavg)"
    CLINIT_BENCH_BIN=$bin CLINIT_BENCH_ARGS="$args" timeout 300 "$RSS" --bench 2>&1 |
      grep -E '^(BENCH|RSS|SMAPS)' | sed "s/^/$mode r$r /"
    CLINIT_BENCH_BIN=$bin CLINIT_BENCH_ARGS="$args" timeout 300 "$DAEMON" --bench respawn_after_kill9 2>&1 |
      grep -E '^PERCENTILES' | sed "s/^/$mode r$r /"
  done
done >> "$OUT"
