#!/usr/bin/env bash
# Makespan benchmark (docs/benchmarks.md, "Makespan"): an AgoraBench-shaped
# plan in miniature — 6 generators with agora.cue's concurrency
# proportions, 3 settings each, on the stand-in server with latency;
# training and evaluation as local jobs of stand-in durations on stand-in
# GPUs — applied by the real agora binary with the resource-aware
# scheduler and with the old policy (-parallelism 8), each makespan set
# against the resource bound. Exits 1 when the new policy's bound /
# makespan is under the target (0.95). Takes about a minute.
#
#   bench/makespan.sh                         # defaults
#   bench/makespan.sh -n 80 -latency 250ms    # flags of bench/makespan
#   bench/makespan.sh -policies new -v        # the new policy alone, agora's output shown
#   BEFORE=1553857 bench/makespan.sh          # also agora as it was at that commit (policy before)
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/agora" ./cmd/agora
go build -o "$tmp/server" ./bench/apply/server
go build -o "$tmp/makespan" ./bench/makespan
echo "agora $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+dirty'), $(go version | cut -d' ' -f3)"
if [[ -n ${BEFORE:-} ]]; then
	mkdir "$tmp/before"
	git archive "$BEFORE" | tar -x -C "$tmp/before"
	(cd "$tmp/before" && go build -o "$tmp/agora-before" ./cmd/agora)
	set -- -before "$tmp/agora-before" -policies new,old,before "$@"
fi
"$tmp/makespan" -agora "$tmp/agora" -server "$tmp/server" "$@"
