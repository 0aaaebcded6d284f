#!/usr/bin/env bash
# Planning benchmarks (docs/benchmarks.md): times `agora plan` as a whole
# process on agora.cue and on a 10,000-cell grid, runs the Go benchmarks of
# compiler/bench_test.go (agora's expansion against the same expansion as
# CUE comprehensions evaluated by the CUE API), and checks the targets:
#
#   agora.cue plans in under 50 ms as a whole process (median)
#   the 10,000-cell grid plans in under 1 s (median; whole process and
#     Load+Compile in process)
#   agora is at least 10x faster than the CUE comprehensions
#
# It exits 1 when a target is missed. Uses hyperfine when it is on PATH,
# else a bash loop. Takes 1.5 to 2 minutes on 2 cores, most of it the
# CUE evaluation.
#
#   bench/plan.sh                      # defaults
#   RUNS=50 GO_COUNT=10 bench/plan.sh  # more samples
#   NO_HYPERFINE=1 bench/plan.sh       # time with the bash loop
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

RUNS=${RUNS:-30}               # whole-process runs of agora plan agora.cue
GRID_RUNS=${GRID_RUNS:-10}     # whole-process runs of the 10k grid and the BPE specs
GO_COUNT=${GO_COUNT:-5}        # -count of the agora benchmarks (the median is reported)
CUE_BENCHTIME=${CUE_BENCHTIME:-1x} # one CUE evaluation takes 35-75 s here

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

start=$SECONDS
say() { printf '[%3ds] %s\n' $((SECONDS - start)) "$*" >&2; }

# stats reads milliseconds, one a line, and prints "median p90"
# (nearest-rank p90).
stats() {
	sort -g | awk '{a[NR] = $1}
		END {
			if (NR == 0) { print "NaN NaN"; exit }
			m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
			i = int(0.9 * NR); if (i < 0.9 * NR) i++
			printf "%.1f %.1f\n", m, a[i]
		}'
}

if [[ -n ${EPOCHREALTIME:-} ]]; then
	now() { t=${EPOCHREALTIME/[.,]/}; } # microseconds, no fork
else
	now() { t=$(($(date +%s%N) / 1000)); }
fi

# NO_HYPERFINE=1 uses the bash loop even where hyperfine is installed.
have_hyperfine() { [[ -z ${NO_HYPERFINE:-} ]] && command -v hyperfine >/dev/null; }

# timeit RUNS CMD ARGS… times CMD as a whole process (stdout and stderr
# discarded) and prints "median p90" in milliseconds.
timeit() {
	local runs=$1
	shift
	"$@" >/dev/null 2>&1 || { say "FAILED: $*"; "$@" >/dev/null; exit 1; }
	if have_hyperfine; then
		hyperfine -N --style none --warmup 3 --runs "$runs" --export-json "$tmp/h.json" "$*" >/dev/null 2>&1
		awk '/"times"/ {f = 1; next} f && /\]/ {f = 0} f {gsub(/[ ,]/, ""); print $0 * 1000}' "$tmp/h.json" | stats
		return
	fi
	local i t s
	for ((i = 0; i < 3; i++)); do "$@" >/dev/null 2>&1; done
	for ((i = 0; i < runs; i++)); do
		now; s=$t
		"$@" >/dev/null 2>&1
		now
		echo "$(((t - s) / 1000)).$(printf '%03d' $(((t - s) % 1000)))"
	done | stats
}

# nsop NAME prints the median ns/op of benchmark NAME in milliseconds.
nsop() {
	awk -v n="$1" '$1 ~ "^" n "(-[0-9]+)?$" {
		for (i = 2; i <= NF; i++) if ($i == "ns/op") print $(i - 1) / 1e6
	}' "$tmp/bench.txt" | stats | cut -d' ' -f1
}

# gotest runs the compiler's test binary (built once with go test -c) in
# the package directory, as go test does: the same as
# go test -run … -bench … ./compiler/.
gotest() { (cd compiler && "$tmp/compiler.test" "$@"); }

load0=$(cut -d' ' -f1-3 /proc/loadavg)
say "building agora, the compiler's test binary and the 10,000-cell spec…"
go build -o "$tmp/agora" ./cmd/agora
go test -c -o "$tmp/compiler.test" ./compiler/
gotest -test.run '^TestGrid10k$' -grid10k-spec="$tmp/grid10k.cue" >/dev/null

# A user's own meta-prompt (a built-in one with a line added, so that its
# token count is not precomputed) with an OpenAI model: planning it loads
# the o200k_base BPE table. Its twin uses the built-in meta-prompt.
mkdir -p "$tmp/bpe"
{ cat prompts/templates/math.response_generation.free-form.tmpl; echo "Answer in English."; } >"$tmp/bpe/own.tmpl"
for variant in own builtin; do
	{
		echo 'generators: "gpt-4o-mini": {provider: openai: api_key_env: "OPENAI_API_KEY", model: "gpt-4o-mini-2024-07-18", price: {input: 0.15, output: 0.60}}'
		if [[ $variant == own ]]; then
			echo 'settings: "math-rg": prompt: file: "own.tmpl"'
		else
			echo 'settings: "math-rg": {}'
		fi
		echo 'student: executor: "local"'
		echo 'evaluation: executor: "local"'
	} >"$tmp/bpe/$variant.cue"
done

tool="bash loop (\$EPOCHREALTIME)"
have_hyperfine && tool="$(hyperfine --version)"
say "timing whole processes with $tool…"
res=$(timeit "$RUNS" "$tmp/agora" version)
read -r version_med version_p90 <<<"$res"
res=$(timeit "$RUNS" "$tmp/agora" plan agora.cue)
read -r agora_med agora_p90 <<<"$res"
res=$(timeit "$GRID_RUNS" "$tmp/agora" plan "$tmp/grid10k.cue")
read -r grid_med grid_p90 <<<"$res"
res=$(timeit "$GRID_RUNS" "$tmp/agora" plan "$tmp/bpe/own.cue")
read -r own_med own_p90 <<<"$res"
res=$(timeit "$GRID_RUNS" "$tmp/agora" plan "$tmp/bpe/builtin.cue")
read -r builtin_med builtin_p90 <<<"$res"

say "running go test -bench (the CUE evaluation takes a while)…"
gotest -test.run '^$' -test.bench '^BenchmarkPlanAgoraCue$' -test.benchtime 1s -test.count "$GO_COUNT" | tee -a "$tmp/bench.txt" >&2
gotest -test.run '^$' -test.bench '^BenchmarkCompileGrid10k$' -test.benchtime 3x -test.count "$GO_COUNT" | tee -a "$tmp/bench.txt" >&2
gotest -test.run '^$' -test.bench '^BenchmarkCUEComprehension10k$' -test.benchtime "$CUE_BENCHTIME" | tee -a "$tmp/bench.txt" >&2

plan_lc=$(nsop BenchmarkPlanAgoraCue/LoadCompile)
plan_c=$(nsop BenchmarkPlanAgoraCue/Compile)
grid_lc=$(nsop BenchmarkCompileGrid10k/LoadCompile)
grid_c=$(nsop BenchmarkCompileGrid10k/Compile)
cue=$(nsop BenchmarkCUEComprehension10k)

# check VALUE OP LIMIT prints PASS or FAIL.
check() {
	if awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN {exit !((op == "<") ? v < l : v >= l)}'; then
		echo PASS
	else
		echo FAIL
	fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.0f", a / b}'; }

r_lc=$(ratio "$cue" "$grid_lc")
r_c=$(ratio "$cue" "$grid_c")
t1=$(check "$agora_med" "<" 50)
t2=$(check "$grid_med" "<" 1000)
t3=$(check "$grid_lc" "<" 1000)
t4=$(check "$r_lc" ">=" 10)

echo
echo "agora planning benchmarks — $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(go version | cut -d' ' -f3), $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+dirty')"
echo "whole process: $tool; in process: go test -bench (median of $GO_COUNT); load average before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '%-58s %12s %10s   %s\n' "measure" "median" "p90" "target"
printf '%-58s %9s ms %7s ms   < 50 ms  %s\n' "agora plan agora.cue, whole process ($RUNS runs)" "$agora_med" "$agora_p90" "$t1"
printf '%-58s %9s ms %7s ms\n' "agora version, whole process: start-up alone ($RUNS runs)" "$version_med" "$version_p90"
printf '%-58s %9s ms %7s ms   < 1 s    %s\n' "agora plan <10,000-cell grid>, whole process ($GRID_RUNS runs)" "$grid_med" "$grid_p90" "$t2"
printf '%-58s %9s ms\n' "agora.cue: spec.Load + compiler.Compile, in process" "$plan_lc"
printf '%-58s %9s ms\n' "agora.cue: compiler.Compile alone" "$plan_c"
printf '%-58s %9s ms %10s   < 1 s    %s\n' "10,000-cell grid: spec.LoadBytes + compiler.Compile" "$grid_lc" "" "$t3"
printf '%-58s %9s ms\n' "10,000-cell grid: compiler.Compile alone" "$grid_c"
printf '%-58s %9s ms\n' "the same expansion as CUE comprehensions (CUE API)" "$cue"
printf '%-58s %10s x %10s   >= 10x   %s\n' "ratio CUE / agora (Load+Compile)" "$r_lc" "" "$t4"
printf '%-58s %10s x\n' "ratio CUE / agora (Compile alone)" "$r_c"
printf '%-58s %9s ms %7s ms\n' "own prompt file + OpenAI model (loads a BPE table)" "$own_med" "$own_p90"
printf '%-58s %9s ms %7s ms\n' "the same spec with the built-in prompt" "$builtin_med" "$builtin_p90"
printf '%-58s %9s ms\n' "cold cost of the BPE table (difference of medians)" "$(awk -v a="$own_med" -v b="$builtin_med" 'BEGIN {printf "%.1f", a - b}')"
echo
if [[ "$t1 $t2 $t3 $t4" == *FAIL* ]]; then
	echo "FAIL: a target was missed"
	say "done"
	exit 1
fi
echo "PASS: all targets met"
say "done"
