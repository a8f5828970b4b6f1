#!/bin/bash
# Issue 15's series of record (and issue 16's backplane rows, at the end) (docs/performance.md, "Results"): lanchat as the README starts it
# (its log on, to a file) against ncat and against itself with --quiet, in one invocation per
# row; the steady-rate rows in both generator shapes. Run from anywhere on a quiet machine
# (--wait-quiet waits for one; a run noted "disturbed" is repeated by hand):
#     docs/bench-results/2026-12-04/run.sh
# BEFORE=/path/to/a/checkout also runs the steady-rate rows against that build (the commit
# before issue 15's merge), with this generator: git worktree add /tmp/before COMMIT.
# The date in the folder's name is the series' own: rename the folder to the day it ran.
set -u
D=$(cd "$(dirname "$0")" && pwd)
cd "$D/../../.."
B=".venv/bin/python scripts/bench --wait-quiet 60 --json"
V="--vs ncat+quiet"
run() {  # run NAME ARGS...
    local name=$1; shift
    $B "$@" > "$D/$name.json" 2> "$D/$name.err"
}
git log -1 --format='%H %cI' > "$D/commit"
for shape in split pooled; do
  run rate100-$shape  $V --clients 100  --senders 10  --mode rate --rate 100 --runs 5 --shape $shape
  run rate1000-$shape $V --clients 1000 --senders 100 --mode rate --rate 10  --runs 5 --shape $shape
done
run sat100   $V --clients 100  --senders 10  --window 8
run sat1000  $V --clients 1000 --senders 100 --window 8
run lat100   $V --clients 100  --senders 1   --window 1 --runs 5
run lat1000  $V --clients 1000 --senders 1   --window 1 --runs 5
run conn1000 --vs ncat --connect-only --clients 1000 --hold 3
run conn5000 --server lanchat --runs 3 --connect-only --clients 5000 --hold 5 --setup-timeout 60
# Issue 16's rows: one room over 1, 2 and 4 relays on one backplane (a fresh redis-server each
# run; the server's CPU is every relay's and Redis's together), beside the relay alone.
run rate20-alone --server lanchat --clients 100 --senders 10 --mode rate --rate 20 --runs 3
for relays in 1 2 4; do
  P="--server lanchat --backplane --relays $relays"
  run sat100-relays$relays  $P --clients 100 --senders 10 --window 8 --runs 3
  run lat100-relays$relays  $P --clients 100 --senders 1  --window 1 --runs 3
  run rate20-relays$relays  $P --clients 100 --senders 10 --mode rate --rate 20 --runs 3
done
if [ -n "${BEFORE:-}" ]; then
  for shape in split pooled; do
    run rate100-$shape-before  --vs ncat --lanchat-tree "$BEFORE" --clients 100  --senders 10  --mode rate --rate 100 --runs 5 --shape $shape
    run rate1000-$shape-before --vs ncat --lanchat-tree "$BEFORE" --clients 1000 --senders 100 --mode rate --rate 10  --runs 5 --shape $shape
  done
fi
echo "series done" >&2
