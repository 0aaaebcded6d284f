#!/usr/bin/env bash
# Alternating runs of one apply point with several agora binaries, for
# changes too small for bench/apply.sh's single runs to separate from
# noise (docs/benchmarks.md, "Where c512 loses its 5%"). Each round runs
# every binary once, in order, on a fresh spec against one stand-in
# server (-lean); at the end it prints each binary's mean window, ratio
# to the bound and CPU, and its mean window over the first binary's.
#
#   bench/apply-ab.sh BIN_A BIN_B…                 # c512 at 100 ms, 5 rounds
#   N=10240 CONC=64 REPS=3 bench/apply-ab.sh A B   # the c64 point
#
# Build the binaries first, e.g. go build -o /tmp/a ./cmd/agora at each
# revision. The server and driver are built from this checkout.
set -euo pipefail
export LC_ALL=C
(($# >= 1)) || { echo "usage: bench/apply-ab.sh AGORA_BINARY…" >&2; exit 2; }
N=${N:-20480} CONC=${CONC:-512} LATENCY=${LATENCY:-100ms} REPS=${REPS:-5}
bins=()
for b in "$@"; do bins+=("$(realpath "$b")"); done
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
server_pid=
trap '[[ -z $server_pid ]] || kill "$server_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
go build -o "$tmp/server" ./bench/apply/server
go build -o "$tmp/driver" ./bench/apply/driver
source bench/apply/server.sh
start_server "$LATENCY"
for ((r = 1; r <= REPS; r++)); do
	for i in "${!bins[@]}"; do
		rm -rf "$tmp/run"
		"$tmp/driver" spec -dir "$tmp/run" -url "$url" -n "$N" -concurrency "$CONC" -rpm 0
		"$tmp/driver" measure -stats "$stats" -out "$tmp/results.$i.jsonl" -log "$tmp/log" \
			-point "ab$i" -tool agora -n "$N" -concurrency "$CONC" -rpm 0 -latency "$LATENCY" \
			-datasets "$tmp/run/.agora/datasets" -- "${bins[$i]}" apply -auto-approve "$tmp/run/agora.cue" 2>&1 |
			sed "s|^|round $r ${bins[$i]}: |"
	done
done
bound=$(awk -v c="$CONC" -v l="$LATENCY" 'BEGIN { ms = l; if (ms ~ /ms$/) { sub(/ms$/, "", ms) } else { sub(/s$/, "", ms); ms *= 1000 }; print c * 1000 / ms }')
echo
printf '%-40s %5s %12s %8s %10s %8s\n' binary runs "mean window" ratio "CPU s/run" "/ first"
first=
for i in "${!bins[@]}"; do
	read -r n w cpu < <(python3 -c '
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
print(len(rs), sum(r["window_s"] for r in rs) / len(rs), sum(r["user_s"] + r["sys_s"] for r in rs) / len(rs))
' "$tmp/results.$i.jsonl")
	first=${first:-$w}
	awk -v b="${bins[$i]}" -v n="$n" -v w="$w" -v cpu="$cpu" -v N="$N" -v bound="$bound" -v f="$first" \
		'BEGIN { printf "%-40s %5d %10.3f s %7.1f%% %10.2f %7.3fx\n", b, n, w, 100 * N / w / bound, cpu, w / f }'
done
