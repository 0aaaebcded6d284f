// Package toolchain knows the Python tools agora's jobs run — TRL,
// accelerate, transformers and torch for training; lm-evaluation-harness,
// evalplus, alpaca_eval and math-verify for evaluation; vLLM where a model
// is served — at the versions agora is written against (the pinned files
// train.txt and eval.txt beside this file, under constraints.txt; see
// docs/toolchain.md).
//
// Needs says which tools a plan needs, grouped by where its jobs run
// (locally, or on a Slurm partition with its modules or container).
// Check runs a small probe (probe.py, embedded) in that environment — as
// a local process, or as a short Slurm job with the plan's own Slurm
// settings — and compares what it finds with the accepted versions,
// returning every mismatch at once. `agora tools` prints the result, and
// `agora apply` runs the local check before it asks for approval.
package toolchain
