#!/bin/bash
# An experiment, not a change: lanchat with Nagle's algorithm left on (the TCP_NODELAY line of
# lanchat/connection.py configure() removed), against ncat as it ships, at issue 15's steady
# rate of 100 clients (docs/performance.md, "Why the rate100 CPU row is not met"). The build
# under test is a detached worktree of HEAD with that one line removed; nothing is committed.
# Run on a quiet machine; needs ncat.
#     docs/bench-results/2026-12-04-nagle/run.sh
set -eu
D=$(cd "$(dirname "$0")" && pwd)
cd "$D/../../.."
TREE=$(mktemp -d /tmp/lanchat-nagle.XXXXXX)
git worktree add --detach "$TREE" HEAD -q
trap 'git worktree remove --force "$TREE"' EXIT
line='    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)'
grep -qxF "$line" "$TREE/lanchat/connection.py"  # the experiment needs exactly this line
grep -vxF "$line" "$TREE/lanchat/connection.py" > "$TREE/c.py" && mv "$TREE/c.py" "$TREE/lanchat/connection.py"
git log -1 --format='%H %cI' > "$D/commit"
for shape in split pooled; do
    .venv/bin/python scripts/bench --wait-quiet 60 --json --vs ncat --lanchat-tree "$TREE" \
        --clients 100 --senders 10 --mode rate --rate 100 --runs 5 --shape $shape \
        > "$D/rate100-$shape.json" 2> "$D/rate100-$shape.err"
done
echo "series done" >&2
