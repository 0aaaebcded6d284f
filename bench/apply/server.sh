# Sourced by bench/apply.sh and bench/apply-ab.sh: start_server starts the
# stand-in server built at $tmp/server (its output in $tmp/server.out),
# stopping the one started before, and sets server_pid, url, key, stats
# and exports AGORA_BENCH_KEY.
#
#   start_server LATENCY [FLAGS…]   # FLAGS default to -lean

start_server() {
	if [[ -n ${server_pid:-} ]]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	local lat=$1
	shift
	(($#)) || set -- -lean
	"$tmp/server" -latency "$lat" "$@" </dev/null >"$tmp/server.out" 2>&1 &
	server_pid=$!
	local i
	for ((i = 0; i < 100; i++)); do
		grep -q '^STATS=' "$tmp/server.out" 2>/dev/null && break
		sleep 0.05
	done
	url=$(sed -n 's/^URL=//p' "$tmp/server.out")
	key=$(sed -n 's/^KEY=//p' "$tmp/server.out")
	stats=$(sed -n 's/^STATS=//p' "$tmp/server.out")
	[[ -n $stats ]] || { echo "the server did not start:" >&2; cat "$tmp/server.out" >&2; exit 1; }
	export AGORA_BENCH_KEY=$key
}
