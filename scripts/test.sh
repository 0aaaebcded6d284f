#!/usr/bin/env bash
# The README's test command. It installs and starts what the tests need —
# a single-node Slurm with munge (scripts/slurm-up.sh), headless Chromium
# (scripts/chromium-install.sh), Python's gRPC for the Python plugin
# test and the pinned Python toolchain (scripts/python-tools.sh) — then
# runs every test. Run it as root on a Debian machine; extra
# arguments go to `go test` (e.g. `bash scripts/test.sh -run Slurm ./engine`,
# which then replace the default ./...).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

# A real single-node Slurm for the Slurm integration tests (under CI=true
# they fail rather than skip when no Slurm answers).
bash scripts/slurm-up.sh

# Headless Chromium for report's HTML screenshot test.
bash scripts/chromium-install.sh

# Python's gRPC for plugins/host's provider plugin written in Python.
if ! /usr/bin/python3 -c 'import grpc, google.protobuf, cryptography' 2>/dev/null; then
	apt-get -o DPkg::Lock::Timeout=120 update -qq
	apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends python3-grpcio python3-protobuf python3-cryptography >/dev/null
fi

# The pinned Python toolchain (toolchain/*.txt) for the real-tool tests:
# TRL, accelerate, transformers, lm-eval, evalplus, alpaca_eval,
# sentence-transformers, math-verify. Built once outside the checkout and
# reused while the pins are unchanged (scripts/python-tools.sh).
AGORA_TOOLS_VENV=$(bash scripts/python-tools.sh | tail -n 1)
export AGORA_TOOLS_VENV

if [ $# -eq 0 ]; then
	set -- ./...
fi
go test "$@"
