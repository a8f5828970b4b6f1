#!/bin/bash
cd "$(dirname "$0")/../../.."
D=docs/bench-results/2026-11-26b
B=".venv/bin/python scripts/bench --wait-quiet 30 --json"
$B --vs ncat --clients 100  --senders 10  --window 8  > $D/sat100.json 2>$D/sat100.err
$B --vs ncat --clients 1000 --senders 100 --window 8  > $D/sat1000.json 2>$D/sat1000.err
$B --vs ncat --clients 100  --senders 1   --window 1 --runs 5 > $D/lat100.json 2>$D/lat100.err
$B --vs ncat --clients 1000 --senders 1   --window 1 --runs 5 > $D/lat1000.json 2>$D/lat1000.err
$B --vs ncat --connect-only --clients 1000 --hold 3 > $D/conn1000.json 2>$D/conn1000.err
$B --server lanchat --runs 3 --connect-only --clients 5000 --hold 5 --setup-timeout 60 > $D/conn5000.json 2>$D/conn5000.err
$B --vs ncat --clients 100  --senders 10  --window 8 --lanchat-option=--all-cores > $D/sat100-allcores.json 2>$D/sat100-allcores.err
$B --vs ncat --kind lanchat --clients 100 --senders 10 --window 8 > $D/sat100-lanchat.json 2>$D/sat100-lanchat.err
for n in 10 30 100 300 1000 3000 5000; do
  k=$(( n >= 10 ? n / 10 : 1 ))
  if [ $n -le 1000 ]; then
    $B --vs ncat --clients $n --senders $k --window 8 --runs 3 --setup-timeout 60 > $D/scale$n.json 2>$D/scale$n.err
  else
    $B --server lanchat --runs 3 --clients $n --senders $k --window 8 --setup-timeout 90 > $D/scale$n.json 2>$D/scale$n.err
  fi
done
echo ALLDONE > $D/done
