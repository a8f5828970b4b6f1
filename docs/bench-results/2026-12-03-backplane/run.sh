#!/bin/bash
# Issue 16's figures. (1) Without --backplane nothing changes: the embedded relay of this branch
# (AFTER) against main before it (BEFORE, an export of the commit it is based on), alternating,
# two rounds. (2) One room over 1, 2 and 4 relays on one backplane (a fresh redis-server each
# run; the server's CPU is every relay's and Redis's together), beside the embedded relay.
# The machine had 2 cores, shared with other work while this ran: indicative figures.
set -u
D=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-python3}
run() {  # run NAME CHECKOUT ARGS...
    local name=$1 tree=$2; shift 2
    (cd "$tree" && $PY scripts/bench --server lanchat --json "$@" > "$D/$name.json" 2> "$D/$name.err")
}
SAT="--clients 100 --senders 10 --window 8"
LAT="--clients 100 --senders 1 --window 1 --runs 3"
RATE="--clients 100 --senders 10 --mode rate --rate 20"
for round in 1 2; do
  for build in before after; do
    tree=$BEFORE; [ $build = after ] && tree=$AFTER
    run sat100-$build-$round "$tree" $SAT
    run lat100-$build-$round "$tree" $LAT
  done
done
run rate100-embedded "$AFTER" $RATE
for relays in 1 2 4; do
  run sat100-relays$relays  "$AFTER" $SAT  --backplane --relays $relays
  run lat100-relays$relays  "$AFTER" $LAT  --backplane --relays $relays
  run rate100-relays$relays "$AFTER" $RATE --backplane --relays $relays
done

