#!/bin/bash
# Issue 10's check: the restructure costs no speed. Before = a8525d9 (the commit before the hub
# redesign), after = 87db621, each from its own checkout (BEFORE, AFTER), alternating, every
# invocation against ncat in the same run (--vs ncat). Then the core keeper, on (default) and
# off (--all-cores), alternating on the after build.
set -u
D=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-python3}
run() {  # run NAME CHECKOUT ARGS...
    local name=$1 tree=$2; shift 2
    (cd "$tree" && $PY scripts/bench --wait-quiet 30 --json "$@" > "$D/$name.json" 2> "$D/$name.err")
}
for round in 1 2; do
  for build in before after; do
    tree=$BEFORE; [ $build = after ] && tree=$AFTER
    run sat100-$build-$round  "$tree" --vs ncat --clients 100  --senders 10  --window 8
    run sat1000-$build-$round "$tree" --vs ncat --clients 1000 --senders 100 --window 8
    run lat100-$build-$round  "$tree" --vs ncat --clients 100  --senders 1   --window 1 --runs 5
    run lat1000-$build-$round "$tree" --vs ncat --clients 1000 --senders 1   --window 1 --runs 5
  done
done
for round in 1 2; do
  run sat100-keeper-$round   "$AFTER" --vs ncat --clients 100 --senders 10 --window 8
  run sat100-allcores-$round "$AFTER" --vs ncat --clients 100 --senders 10 --window 8 --lanchat-option=--all-cores
  run lat100-keeper-$round   "$AFTER" --vs ncat --clients 100 --senders 1 --window 1 --runs 5
  run lat100-allcores-$round "$AFTER" --vs ncat --clients 100 --senders 1 --window 1 --runs 5 --lanchat-option=--all-cores
done
echo ALLDONE > "$D/done"
