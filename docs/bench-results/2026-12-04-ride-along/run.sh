#!/bin/bash
# Before and after frames began to ride along with a running pass (lanchat/fanout.py, 35d5f7a):
# rate100, each build against ncat in its own invocation (--vs ncat, 3 runs per server), the two
# builds alternating, two rounds (docs/performance.md, "Frames that ride along"). "old" is
# 2c8977b, the commit before; "new" is 35d5f7a. Files: SHAPE-BUILD-ROUND.json. The series was
# made with the "new" build as the working tree; this script checks both out as worktrees.
# One difference from 35d5f7a: the last edit of that commit (a frame that rode along counts once
# in the demand; before, the next round counted it again, which could start a hold sooner) was
# made while round 1 ran, so round 1's "new" runs may have been without it. Round 2's were not.
# Each invocation's first runs (lanchat #1, ncat #1) have the generator's fault found afterwards
# (docs/benchmarking.md, "The generator's reads"), in both builds alike.
# Run on a quiet machine; needs ncat.
#     docs/bench-results/2026-12-04-ride-along/run.sh
set -eu
D=$(cd "$(dirname "$0")" && pwd)
cd "$D/../../.."
OLD=$(mktemp -d /tmp/lanchat-old.XXXXXX)
NEW=$(mktemp -d /tmp/lanchat-new.XXXXXX)
git worktree add --detach "$OLD" 2c8977b -q
git worktree add --detach "$NEW" 35d5f7a -q
trap 'git worktree remove --force "$OLD"; git worktree remove --force "$NEW"' EXIT
for round in 1 2; do
  for shape in pooled split; do
    for build in new old; do
      tree=$NEW; [ $build = old ] && tree=$OLD
      .venv/bin/python scripts/bench --wait-quiet 60 --json --vs ncat --lanchat-tree "$tree" \
          --clients 100 --senders 10 --mode rate --rate 100 --runs 3 --shape $shape \
          > "$D/$shape-$build-$round.json" 2> "$D/$shape-$build-$round.err"
    done
  done
done
echo "series done" >&2
