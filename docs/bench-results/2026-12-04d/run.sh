#!/bin/bash
# Issue 15's series of record, after the generator's reads stopped costing its first runs 1.7
# cores (docs/benchmarking.md, "The generator's reads") and with frames riding along with a
# running pass (lanchat/fanout.py): lanchat as the README starts it, ncat as it ships,
# ncat-nodelay (ncat --chat with TCP_NODELAY set on its connections, scripts/benchkit/nodelay.c)
# and lanchat --quiet, in one invocation per row (docs/performance.md, "Results"). The same rows
# as 2026-12-04b/run.sh, and the log's cost again on its own ("log"). Run on a quiet
# machine (--wait-quiet waits for one); needs ncat and a C compiler (cc) for the shim.
#     docs/bench-results/2026-12-04d/run.sh          every row
#     docs/bench-results/2026-12-04d/run.sh rate     the steady-rate rows only
#     docs/bench-results/2026-12-04d/run.sh rest     the others
#     docs/bench-results/2026-12-04d/run.sh log      the log's cost again: lanchat against
#                                                     lanchat --quiet alone, rate100 (not in "all")
set -u
D=$(cd "$(dirname "$0")" && pwd)
cd "$D/../../.."
B=".venv/bin/python scripts/bench --wait-quiet 60 --json"
V="--vs ncat+ncat-nodelay+quiet"
run() {  # run NAME ARGS...
    local name=$1; shift
    $B "$@" > "$D/$name.json" 2> "$D/$name.err"
}
part=${1:-all}
if [ "$part" = all ] || [ "$part" = rate ]; then
  git log -1 --format='%H %cI' > "$D/commit"
  for shape in split pooled; do
    run rate100-$shape  $V --clients 100  --senders 10  --mode rate --rate 100 --runs 5 --shape $shape
    run rate1000-$shape $V --clients 1000 --senders 100 --mode rate --rate 10  --runs 5 --shape $shape
  done
fi
if [ "$part" = log ]; then
  git log -1 --format='%H %cI' > "$D/commit-log"
  for shape in split pooled; do
    run log100-$shape --vs quiet --clients 100 --senders 10 --mode rate --rate 100 --runs 5 --shape $shape
  done
fi
if [ "$part" = all ] || [ "$part" = rest ]; then
  git log -1 --format='%H %cI' > "$D/commit-rest"
  run sat100   $V --clients 100  --senders 10  --window 8
  run sat1000  $V --clients 1000 --senders 100 --window 8
  run lat100   $V --clients 100  --senders 1   --window 1 --runs 5
  run lat1000  $V --clients 1000 --senders 1   --window 1 --runs 5
  run conn1000 --vs ncat --connect-only --clients 1000 --hold 3
  run conn5000 --server lanchat --runs 3 --connect-only --clients 5000 --hold 5 --setup-timeout 60
fi
echo "series done" >&2
