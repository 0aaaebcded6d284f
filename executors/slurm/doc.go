// Package slurm runs agora's training and evaluation jobs on a Slurm
// cluster through Slurm's own commands: sbatch, squeue, scontrol and
// scancel, run as processes (no REST API, no accounting database needed).
//
// The pieces, each small enough to use alone:
//
//   - Render turns a Job (a body, a working directory, spec.Hardware and
//     spec.Slurm) into an sbatch script: resources, partition, account,
//     qos, requeue, a USR1 trap that checkpoints and requeues before the
//     time limit, a pyxis container or environment modules, extra
//     directives. Secrets are exported by name only.
//   - Client.Submit / SubmitJob submit with `sbatch --parsable` and return
//     the job id; record it before anything else.
//   - Client.Poll asks about all of a caller's jobs with one squeue call.
//   - Classify says what to do about a state: wait, succeed, requeue,
//     resubmit, give up, or check what a job that left the queue left
//     behind (Resolve reads its exit marker).
//   - Client.Cancel and Client.Requeue wrap scancel and scontrol requeue.
//
// # What Slurm does (22.05, single node, no accounting)
//
// Finished jobs stay visible to squeue -t all for MinJobAge seconds (300
// by default), then slurmctld forgets them; without slurmdbd there is no
// sacct to ask, so Poll reports Unknown and the caller resolves the job
// from its exit marker and outputs.
//
// A node set DOWN while a job submitted with --requeue runs on it: Slurm
// kills the job ("CANCELLED ... DUE TO NODE FAILURE" in its log) and puts
// it straight back to PENDING with Reason BeginTime: NODE_FAIL is never
// visible to squeue. It may start again after the credential lifetime
// (AuthInfo cred_expire, 120 s by default), with SLURM_RESTART_COUNT
// raised by one. A job without --requeue ends in NODE_FAIL instead.
// `scontrol requeue` behaves the same way, and Slurm refuses it for jobs
// submitted with --no-requeue.
//
// The exit code squeue prints (-O exit_code) is the raw wait status (768
// for exit 3); Status.ExitCode is the shell's view (3, or 128+N for
// signal N).
package slurm
