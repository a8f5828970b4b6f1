#!/bin/bash
# Issue 15's steady-rate rows again, with a third reference: ncat-nodelay, ncat --chat with
# TCP_NODELAY set on its connections (scripts/benchkit/nodelay.c), beside ncat as it ships and
# lanchat --quiet, in one invocation per row (docs/performance.md, "Results"). Run on a quiet
# machine (--wait-quiet waits for one); needs ncat and a C compiler (cc) for the shim.
#     docs/bench-results/2026-12-04b/run.sh
set -u
D=$(cd "$(dirname "$0")" && pwd)
cd "$D/../../.."
B=".venv/bin/python scripts/bench --wait-quiet 60 --json"
V="--vs ncat+ncat-nodelay+quiet"
run() {  # run NAME ARGS...
    local name=$1; shift
    $B "$@" > "$D/$name.json" 2> "$D/$name.err"
}
git log -1 --format='%H %cI' > "$D/commit"
for shape in split pooled; do
  run rate100-$shape  $V --clients 100  --senders 10  --mode rate --rate 100 --runs 5 --shape $shape
  run rate1000-$shape $V --clients 1000 --senders 100 --mode rate --rate 10  --runs 5 --shape $shape
done
echo "series done" >&2
