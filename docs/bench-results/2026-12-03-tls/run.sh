#!/bin/bash
# serve --tls, indicative: one run of each, plain and --tls back to back, on the shared 2-core
# machine (other helpers' tests ran meanwhile: see each run's other_cpu_util). From the root.
set -u
D=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-.venv/bin/python}
for t in "" "--tls"; do
  s=${t:+-tls}
  $PY scripts/bench --vs ncat --runs 1 --connect-only --clients 1000 --hold 1 $t --json > "$D/conn1000$s.json"
  $PY scripts/bench --vs ncat --runs 1 --clients 100 --senders 10 --window 8 --duration 3 $t --json > "$D/sat100$s.json"
  $PY scripts/bench --server lanchat --runs 1 --clients 100 --senders 10 --mode rate --rate 20 --duration 3 $t --json > "$D/rate100$s.json"
done
