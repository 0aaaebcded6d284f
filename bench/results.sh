#!/usr/bin/env bash
# `agora report -results` on a million rows (docs/benchmarks.md, "report
# -results: a million rows"): writes the results file of
# report.BenchmarkResultsMillion, then times the real command on it with
# this checkout's agora and, side by side, with the agora of BEFORE (a
# commit), alternating, and prints each one's mean wall, CPU and peak
# memory and the ratio of the means. The target: under 10 s wall.
#
#   bench/results.sh                        # this checkout, 3 runs
#   BEFORE=f234525 bench/results.sh         # and that commit, alternating
#   ROWS=300000 REPS=5 bench/results.sh
set -euo pipefail
export LC_ALL=C
ROWS=${ROWS:-1000000} REPS=${REPS:-3} BEFORE=${BEFORE:-}
cd "$(dirname "$0")/.."
command -v /usr/bin/time >/dev/null || { echo "bench/results.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/before" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/agora" ./cmd/agora
bins=("$tmp/agora")
names=(HEAD)
if [[ -n $BEFORE ]]; then
	git worktree add -q --detach "$tmp/before" "$BEFORE"
	(cd "$tmp/before" && go build -o "$tmp/agora-before" ./cmd/agora)
	bins+=("$tmp/agora-before")
	names+=("$BEFORE")
fi
AGORA_BENCH_RESULTS_FILE="$tmp/results.csv" AGORA_BENCH_ROWS=$ROWS go test -count=1 ./report -run TestWriteBenchResults >/dev/null
echo "results file: $ROWS rows, $(du -m "$tmp/results.csv" | cut -f1) MB; load average $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs"
for ((r = 1; r <= REPS; r++)); do
	for i in "${!bins[@]}"; do
		/usr/bin/time -f "%e %U %S %M" -o "$tmp/time" "${bins[$i]}" report -results "$tmp/results.csv" >"$tmp/out.$i.md"
		echo "${names[$i]} $(cat "$tmp/time")" | tee -a "$tmp/times"
	done
done
if [[ -n $BEFORE ]] && ! cmp -s "$tmp/out.0.md" "$tmp/out.1.md"; then
	echo "note: the two reports differ (expected when the report's content changed between the commits)"
fi
echo
awk -v first="${names[0]}" -v rows="$ROWS" '
	{ n[$1]++; w[$1] += $2; u[$1] += $3; s[$1] += $4; if ($5 > m[$1]) m[$1] = $5; order[$1] = order[$1] ? order[$1] : ++k; name[k] = $1 }
	END {
		printf "%-12s %5s %10s %10s %10s %10s %9s\n", "agora", "runs", "wall s", "user s", "sys s", "peak MB", "/ HEAD"
		for (i = 1; i <= k; i++) {
			b = name[i]
			printf "%-12s %5d %10.2f %10.2f %10.2f %10d %8.2fx\n", b, n[b], w[b]/n[b], u[b]/n[b], s[b]/n[b], m[b]/1024, (w[b]/n[b]) / (w[first]/n[first])
		}
		if (rows >= 1000000) printf "\ntarget (a million rows under 10 s wall): %s\n", (w[first]/n[first] < 10) ? "met" : "NOT met"
	}' "$tmp/times"
