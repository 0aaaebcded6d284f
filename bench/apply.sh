#!/usr/bin/env bash
# Apply benchmarks (docs/benchmarks.md, "Apply throughput"): runs real
# `agora apply` processes — spec, plan, state, engine, the OpenAI-compatible
# client, real HTTP on 127.0.0.1 — against a stand-in server run as its
# own process (bench/apply/server -lean; see below), and
# checks the targets:
#
#   at 100 ms per request, throughput >= 95% of the bound
#     min(concurrency / latency, rpm / 60) at concurrency 64 and 512
#     (limits.concurrency, no rpm), and at an rpm limit below the
#     concurrency bound (its steady rate; the bucket starts with one
#     second's allowance)
#   (extra) concurrency 512 at 1 s per request, where the CPU is not the
#     limit: the same 95%
#   peak RSS of agora apply stays flat from 10,000 to 100,000 instances
#     (100,000 ÷ 10,000 within 1.25×; low latency, high concurrency)
#
# and reports CPU-seconds per 10,000 requests (getrusage of the agora
# process: user + sys, whole process). Side by side at the same points, the
# same requests from the Node.js openai SDK (bench/apply/node, npm "openai")
# and from agora's bare client (executors/api in a loop), with the ratios
# of throughput and of CPU per request. Every process is measured by
# `driver measure` (bench/apply/driver), which runs it as a child and reads
# its rusage from wait4. It exits 1 when a target is missed. Takes about 3
# minutes on 2 cores.
#
#   bench/apply.sh                              # defaults
#   NO_NODE=1 bench/apply.sh                    # without Node.js
#   N64=6400 N512=10240 RSS_NS="10000 100000" bench/apply.sh
#   KEEP_RESULTS=results.jsonl bench/apply.sh  # keep the raw records
#   APITEST_ROWS= bench/apply.sh               # without the apitest-server rows
#
# The server runs with -lean (bench/apply/server/lean.go): the same API
# contract at a fraction of apitest's CPU per request, since on 2 cores the
# instrument's CPU competes with the client under test. With APITEST_ROWS
# set (the default), agora's c64 and c512 points are run again against the
# apitest-based server (points c64-apitest, c512-apitest) for comparison:
# their ratio is printed, marked cmp, and is not a target.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

LATENCY=${LATENCY:-100ms}          # the server's latency for the throughput points
N64=${N64:-10240}                  # requests at concurrency 64 (a multiple of 64: whole waves)
N512=${N512:-51200}                # requests at concurrency 512: 100 waves (~10 s), so the
                                   # run's fixed ~0.14 s (its ramp-up and its last wave's
                                   # spread) weighs ~1.4%, not the ~3.5% of 40 waves
RPM=${RPM:-1200}                   # the RPM point: limits {concurrency: 64, rpm: RPM}, bound RPM/60
NRPM=${NRPM:-520}                  # its requests: ~26 s at RPM/60 (the bucket holds one second's)
RPM_TAIL=${RPM_TAIL:-20s}          # its steady rate is measured over the last RPM_TAIL of arrivals
N512_SLOW=${N512_SLOW:-5120}       # concurrency 512 at 1 s a request (bound 512/s): not CPU-bound
RSS_NS=${RSS_NS:-"10000 30000 100000"} # instances of the RSS runs
RSS_LATENCY=${RSS_LATENCY:-2ms}
RSS_CONC=${RSS_CONC:-256}
APITEST_ROWS=${APITEST_ROWS-1}     # also agora at c64 and c512 against the apitest server

tmp=$(mktemp -d)
server_pid=
trap '[[ -z $server_pid ]] || kill "$server_pid" 2>/dev/null; rm -rf "$tmp"' EXIT

start=$SECONDS
say() { printf '[%3ds] %s\n' $((SECONDS - start)) "$*" >&2; }

# cpu_pressure prints the share of the last 60 s in which some task waited
# for a CPU (Linux PSI), when the kernel reports it.
cpu_pressure() {
	[[ -r /proc/pressure/cpu ]] || return 0
	printf '; CPU pressure (some, avg60): %s%%' "$(sed -n 's/^some .*avg60=\([0-9.]*\).*/\1/p' /proc/pressure/cpu)"
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
psi0=$(cpu_pressure)
say "building agora, the stand-in server and the driver…"
go build -o "$tmp/agora" ./cmd/agora
go build -o "$tmp/server" ./bench/apply/server
go build -o "$tmp/driver" ./bench/apply/driver

node_ok=
if [[ -z ${NO_NODE:-} ]] && command -v node >/dev/null && command -v npm >/dev/null; then
	node_ok=1
	if [[ ! -f bench/apply/node/node_modules/openai/package.json ]]; then
		say "installing the openai npm package (npm ci)…"
		if ! (cd bench/apply/node && npm ci --no-audit --no-fund --loglevel=error >&2); then
			say "npm ci failed: Node.js skipped"
			node_ok=
		fi
	fi
else
	say "Node.js skipped (NO_NODE set, or node/npm not on PATH)"
fi

# start_server LATENCY [FLAGS…]: bench/apply/server.sh.
source bench/apply/server.sh

results=$tmp/results.jsonl

# measure POINT TOOL N CONC RPM LATENCY TAIL DATASETS -- CMD… runs CMD
# under driver measure.
measure() {
	local point=$1 tool=$2 n=$3 conc=$4 rpm=$5 lat=$6 tail=$7 datasets=$8
	shift 9
	"$tmp/driver" measure -stats "$stats" -out "$results" -log "$tmp/$point.$tool.log" \
		-point "$point" -tool "$tool" -n "$n" -concurrency "$conc" -rpm "$rpm" -latency "$lat" -tail "$tail" \
		-datasets "$datasets" -- "$@"
}

# agora_point POINT N CONC RPM LATENCY [TAIL] applies a fresh spec of N
# instances (a new directory, so a new state) with agora.
agora_point() {
	local point=$1 n=$2 conc=$3 rpm=$4 lat=$5 tail=${6:-}
	local dir=$tmp/$point
	"$tmp/driver" spec -dir "$dir" -url "$url" -n "$n" -concurrency "$conc" -rpm "$rpm" \
		-prompts "$tmp/$point.prompts.jsonl"
	measure "$point" agora "$n" "$conc" "$rpm" "$lat" "$tail" "$dir/.agora/datasets" -- \
		"$tmp/agora" apply -auto-approve "$dir/agora.cue"
}

# others POINT N CONC LATENCY: the bare Go client and Node.js on the same
# requests (those agora sent first, replayed in a cycle).
others() {
	local point=$1 n=$2 conc=$3 lat=$4
	local prompts=$tmp/$point.prompts.jsonl
	measure "$point" go-client "$n" "$conc" 0 "$lat" "" "" -- \
		"$tmp/driver" client -url "$url" -prompts "$prompts" -n "$n" -concurrency "$conc"
	if [[ -n $node_ok ]]; then
		measure "$point" node "$n" "$conc" 0 "$lat" "" "" -- \
			node bench/apply/node/load.mjs --url "$url" --prompts "$prompts" --n "$n" --concurrency "$conc"
	fi
}

say "throughput at $LATENCY a request…"
start_server "$LATENCY"
agora_point c64 "$N64" 64 0 "$LATENCY"
others c64 "$N64" 64 "$LATENCY"
agora_point c512 "$N512" 512 0 "$LATENCY"
others c512 "$N512" 512 "$LATENCY"
agora_point "rpm$RPM" "$NRPM" 64 "$RPM" "$LATENCY" "$RPM_TAIL"

if [[ -n $APITEST_ROWS ]]; then
	say "the same c64 and c512 points against the apitest server…"
	start_server "$LATENCY" -lean=false
	agora_point c64-apitest "$N64" 64 0 "$LATENCY"
	agora_point c512-apitest "$N512" 512 0 "$LATENCY"
fi

say "concurrency 512 at 1 s a request…"
start_server 1s
agora_point c512-1s "$N512_SLOW" 512 0 1s

say "peak RSS at $RSS_LATENCY a request, concurrency $RSS_CONC…"
start_server "$RSS_LATENCY"
for n in $RSS_NS; do
	agora_point "rss-$n" "$n" "$RSS_CONC" 0 "$RSS_LATENCY"
done

node_v=
if [[ -n $node_ok ]]; then
	node_v=", node $(node --version), npm openai $(sed -n 's/^  "version": "\(.*\)",$/\1/p' bench/apply/node/node_modules/openai/package.json)"
fi
echo
echo "agora apply benchmarks — $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(go version | cut -d' ' -f3)$node_v, $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+dirty')"
echo "before: load average $load0$psi0"
echo "after:  load average $(cut -d' ' -f1-3 /proc/loadavg)$(cpu_pressure)"
if awk -v l="${load0%% *}" -v n="$(nproc)" 'BEGIN {exit !(l > n / 2)}'; then
	echo "WARNING: the machine was busy (load average ${load0%% *} on $(nproc) cores): the client and server wait for CPU; compare with a quiet run"
fi
echo
status=0
"$tmp/driver" report "$results" || status=$?
if [[ -n ${KEEP_RESULTS:-} ]]; then
	cp "$results" "$KEEP_RESULTS"
	say "results kept in $KEEP_RESULTS"
fi
say "done"
exit "$status"
