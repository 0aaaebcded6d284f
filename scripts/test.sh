#!/usr/bin/env bash
# The README's test command. It installs and starts what the tests need —
# a single-machine Slurm with munge (scripts/slurm-up.sh), headless Chromium
# (scripts/chromium-install.sh) and the pinned Python toolchain
# (scripts/python-tools.sh; the Python plugin SDK's tests run on it too) — then
# runs every test. Run it as root on a Debian machine; extra
# arguments go to `go test` (e.g. `bash scripts/test.sh -run Slurm ./engine`,
# which then replace the default ./...).
#
# AGORA_TEST_RACE=1 (CI sets it, in .ci/run) runs the packages where
# goroutines, processes and the Slurm jobs meet — engine, executors/...,
# state, plugins/..., providers, toolchain/..., cli, internal/... — under
# the race detector (go test -race), *instead of* without it, and the
# other packages (pure computation: spec, compiler, analysis, report, ...)
# without it, one go test after the other: every test still runs once, and
# the race run costs the race build and the slowdown of those packages
# only (measured in .ci/run). It installs gcc when missing (-race needs
# cgo). With extra arguments it adds -race to them.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

race=${AGORA_TEST_RACE:-0}
case "$race" in
0 | 1) ;;
*)
	echo "test.sh: AGORA_TEST_RACE must be 0 or 1, got '$race'" >&2
	exit 2
	;;
esac

# A real single-machine Slurm for the Slurm integration tests (under CI=true
# they fail rather than skip when no Slurm answers).
bash scripts/slurm-up.sh

# Headless Chromium for report's HTML screenshot test.
bash scripts/chromium-install.sh

# The pinned Python toolchain (toolchain/*.txt) for the real-tool tests:
# TRL, accelerate, transformers, lm-eval, evalplus, alpaca_eval,
# sentence-transformers, math-verify; and grpcio, protobuf and
# cryptography, the Python plugin SDK's pins (plugins/sdk/python), whose
# tests build its wheel offline and run plugins written with it on this
# environment. Built once outside the checkout and reused while the pins
# are unchanged (scripts/python-tools.sh).
AGORA_TOOLS_VENV=$(bash scripts/python-tools.sh | tail -n 1)
export AGORA_TOOLS_VENV

# A package's tests may take longer than go test's default 10 minutes:
# the engine package runs the real TRL, lm-eval and reward tools besides
# its Slurm pipelines (about 6-7 minutes alone on 2 cores, more while other
# packages run beside it, and more again under the race detector).
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-timeout=40m"

if [ "$race" = 0 ]; then
	if [ $# -eq 0 ]; then
		set -- ./...
	fi
	exec go test "$@"
fi

# The race detector needs cgo, hence a C compiler.
if ! command -v gcc >/dev/null 2>&1; then
	apt-get -o DPkg::Lock::Timeout=120 update -qq
	apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends gcc libc6-dev >/dev/null
fi
export CGO_ENABLED=1
if [ $# -gt 0 ]; then
	exec go test -race "$@"
fi
race_pkgs=(./engine/... ./executors/... ./state/... ./plugins/... ./providers/... ./toolchain/... ./cli/... ./internal/...)
mapfile -t race_list < <(go list "${race_pkgs[@]}")
mapfile -t other_list < <(go list ./... | grep -vxF -f <(printf '%s\n' "${race_list[@]}"))
status=0
start=$(date +%s)
go test -race "${race_pkgs[@]}" || status=1
echo "test.sh: the race run (${#race_list[@]} packages, go test -race) took $(($(date +%s) - start)) s"
start=$(date +%s)
go test "${other_list[@]}" || status=1
echo "test.sh: the other ${#other_list[@]} packages (go test) took $(($(date +%s) - start)) s"
exit "$status"
