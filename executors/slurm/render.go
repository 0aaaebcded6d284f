package slurm

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agorabench/agora/spec"
)

// Job is one batch job to render.
type Job struct {
	// Name is the job name (--job-name). Required; no whitespace.
	Name string
	// Script is the body: shell commands run after the #SBATCH header and
	// the prologue. It runs in a subshell of /bin/bash; its exit status is
	// the job's.
	Script string
	// Dir is the absolute working directory (--chdir), on a filesystem the
	// compute nodes see. The log goes to Dir/slurm-%j.out (opened in append
	// mode, so the runs of a requeued job follow one another) and the exit
	// marker to Dir/slurm-<id>.exit (see ExitMarker).
	Dir string
	// Hardware gives --nodes, --gpus-per-node (omitted for 0 GPUs),
	// --cpus-per-task, --mem and --time; zero values are omitted (Nodes 0
	// means 1).
	Hardware spec.Hardware
	// Slurm gives --partition, --account, --qos, extra directives, and a
	// pyxis container image or environment modules.
	Slurm spec.Slurm
	// Requeue (--requeue) lets Slurm put the job back in the queue itself
	// after a node failure or preemption, and lets `scontrol requeue` do
	// so. Without it the script says --no-requeue, whatever the cluster's
	// JobRequeue default: such a job ends in NODE_FAIL and can only be
	// submitted again.
	Requeue bool
	// SignalSeconds > 0 asks Slurm to send SIGUSR1 to the batch shell that
	// many seconds before the time limit (--signal=B:USR1@N); the script
	// then runs Checkpoint and requeues itself with `scontrol requeue`.
	// It implies Requeue.
	SignalSeconds int
	// Checkpoint is an optional shell command run on SIGUSR1 before the
	// requeue, e.g. one that tells the trainer to save; the body's pid is
	// in $AGORA_BODY_PID.
	Checkpoint string
	// Env holds variables the job needs, secrets included. Only their names
	// are written into the script (--export=ALL,NAME,...); SubmitJob passes
	// the values through sbatch's own environment, so they reach the job
	// without ever being written to a file.
	Env map[string]string
}

// Names of the files a job leaves in its Dir.
const (
	logPattern = "slurm-%j.out"
)

// LogPath is where the log of job id rendered with Dir dir goes.
func LogPath(dir, id string) string {
	return filepath.Join(dir, "slurm-"+id+".out")
}

// ExitMarker is the file in which a rendered job writes its body's exit
// status (a decimal number and a newline) when the body finishes. A job
// killed by Slurm (cancelled, timed out, node failure, requeue) writes
// none; each run removes the marker of the previous one first.
func ExitMarker(dir, id string) string {
	return filepath.Join(dir, "slurm-"+id+".exit")
}

var (
	envName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	memRe      = spec.MemPattern
	timeLimit  = regexp.MustCompile(`^(?:[0-9]+|[0-9]+:[0-9]{1,2}|[0-9]+:[0-9]{1,2}:[0-9]{1,2}|[0-9]+-[0-9]+|[0-9]+-[0-9]+:[0-9]{1,2}|[0-9]+-[0-9]+:[0-9]{1,2}:[0-9]{1,2}|UNLIMITED|INFINITE)$`)
	shellSafe  = regexp.MustCompile(`^[A-Za-z0-9@%+=:,./_-]+$`)
	errNoName  = errors.New("job name is empty")
	errNoDir   = errors.New("job dir is empty")
	errRelDir  = errors.New("job dir must be absolute")
	errNoBody  = errors.New("job script is empty")
	maxSignalS = 65535
)

// Render returns the sbatch script of j: the #SBATCH header (job name,
// chdir, output, resources, partition, account, qos, requeue, signal,
// exported names, extra directives, pyxis container), then a prologue
// (exit marker, environment modules, the USR1 trap), then the body. It
// checks every value that goes into a directive, so a malformed spec is an
// error here rather than a job that sbatch misreads. The same Job always
// renders to the same text.
func Render(j Job) (string, error) {
	if err := validate(j); err != nil {
		return "", err
	}
	dir := filepath.Clean(j.Dir)
	nodes := j.Hardware.Nodes
	if nodes <= 0 {
		nodes = 1
	}
	requeue := j.Requeue || j.SignalSeconds > 0

	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	directive := func(format string, args ...any) { line("#SBATCH "+format, args...) }

	if len(j.Slurm.Modules) > 0 {
		// A login shell reads /etc/profile, which defines `module` on
		// clusters that have environment modules or Lmod.
		line("#!/bin/bash -l")
	} else {
		line("#!/bin/bash")
	}
	directive("--job-name=%s", j.Name)
	directive("--chdir=%s", dir)
	directive("--output=%s", filepath.Join(dir, logPattern))
	directive("--open-mode=append")
	directive("--nodes=%d", nodes)
	directive("--ntasks-per-node=1")
	if j.Hardware.GPUsPerNode > 0 {
		directive("--gpus-per-node=%d", j.Hardware.GPUsPerNode)
	}
	if j.Hardware.CPUsPerTask > 0 {
		directive("--cpus-per-task=%d", j.Hardware.CPUsPerTask)
	}
	if j.Hardware.Mem != "" {
		directive("--mem=%s", normalizeMem(j.Hardware.Mem))
	}
	if j.Hardware.TimeLimit != "" {
		directive("--time=%s", j.Hardware.TimeLimit)
	}
	if j.Slurm.Partition != "" {
		directive("--partition=%s", j.Slurm.Partition)
	}
	if j.Slurm.Account != "" {
		directive("--account=%s", j.Slurm.Account)
	}
	if j.Slurm.QOS != "" {
		directive("--qos=%s", j.Slurm.QOS)
	}
	if requeue {
		directive("--requeue")
	} else {
		directive("--no-requeue")
	}
	if j.SignalSeconds > 0 {
		directive("--signal=B:USR1@%d", j.SignalSeconds)
	}
	if names := envNames(j.Env); len(names) > 0 {
		directive("--export=ALL,%s", strings.Join(names, ","))
	}
	for _, d := range j.Slurm.Directives {
		directive("%s", trimDirective(d))
	}
	if j.Slurm.Container != "" {
		// pyxis applies these to the job's srun steps.
		directive("--container-image=%s", j.Slurm.Container)
		directive("--container-mounts=%s:%s", dir, dir)
		directive("--container-workdir=%s", dir)
	}
	line("#")
	line("# Rendered by agora. The body below runs in a subshell; its exit status")
	line("# goes to slurm-$SLURM_JOB_ID.exit beside the log, for jobs that have")
	line("# left the queue by the time agora looks.")
	line("")
	line("agora_exit=%s/slurm-${SLURM_JOB_ID}.exit", shellQuote(dir))
	line(`rm -f "$agora_exit"`)
	line(`agora_finish() {`)
	line(`	printf '%%s\n' "$1" >"$agora_exit"`)
	line(`	exit "$1"`)
	line(`}`)
	line(`echo "agora: job $SLURM_JOB_ID run ${SLURM_RESTART_COUNT:-0} on $(hostname) at $(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ)"`)
	if len(j.Slurm.Modules) > 0 {
		mods := make([]string, len(j.Slurm.Modules))
		for i, m := range j.Slurm.Modules {
			mods[i] = shellQuote(m)
		}
		line("")
		line(`module load %s || { echo "agora: module load failed" >&2; agora_finish 1; }`, strings.Join(mods, " "))
	}
	line("")
	if j.SignalSeconds > 0 {
		line(`# Slurm sends USR1 %d s before the time limit: checkpoint, then requeue.`, j.SignalSeconds)
		line(`agora_on_usr1() {`)
		line(`	echo "agora: USR1, the time limit is near: checkpointing and requeueing job $SLURM_JOB_ID"`)
		if strings.TrimSpace(j.Checkpoint) != "" {
			line(`	if ! (`)
			line(`%s`, strings.TrimRight(j.Checkpoint, "\n"))
			line(`	); then`)
			line(`		echo "agora: the checkpoint command failed" >&2`)
			line(`	fi`)
		}
		line(`	scontrol requeue "$SLURM_JOB_ID"`)
		line(`}`)
		line(`trap agora_on_usr1 USR1`)
		line("")
		// bash runs a trap only between commands: run the body in the
		// background and wait, so USR1 is handled while the body runs.
		line(`(`)
		line(`%s`, strings.TrimRight(j.Script, "\n"))
		line(`) &`)
		line(`AGORA_BODY_PID=$!`)
		line(`while kill -0 "$AGORA_BODY_PID" 2>/dev/null; do`)
		line(`	wait "$AGORA_BODY_PID"`)
		line(`done`)
		line(`wait "$AGORA_BODY_PID"`)
		line(`agora_finish $?`)
	} else {
		line(`(`)
		line(`%s`, strings.TrimRight(j.Script, "\n"))
		line(`)`)
		line(`agora_finish $?`)
	}
	return b.String(), nil
}

func validate(j Job) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	word := func(what, v string) {
		if v != "" && strings.IndexFunc(v, isSpaceOrControl) >= 0 {
			bad("%s %q contains whitespace or control characters", what, v)
		}
	}
	switch {
	case j.Name == "":
		errs = append(errs, errNoName)
	default:
		word("job name", j.Name)
	}
	switch {
	case j.Dir == "":
		errs = append(errs, errNoDir)
	case !filepath.IsAbs(j.Dir):
		errs = append(errs, fmt.Errorf("%w: %q", errRelDir, j.Dir))
	default:
		for _, p := range spec.JobDirProblems(j.Dir) {
			bad("%s", p)
		}
	}
	if strings.TrimSpace(j.Script) == "" {
		errs = append(errs, errNoBody)
	}
	h := j.Hardware
	if h.Nodes < 0 || h.GPUsPerNode < 0 || h.CPUsPerTask < 0 {
		bad("hardware counts must not be negative (nodes %d, gpus_per_node %d, cpus_per_task %d)", h.Nodes, h.GPUsPerNode, h.CPUsPerTask)
	}
	if p := spec.MemProblem(h.Mem); p != "" {
		bad("%s", p)
	}
	if h.TimeLimit != "" && !timeLimit.MatchString(h.TimeLimit) {
		bad("time limit %q is not a Slurm time ([D-]HH:MM:SS, MM:SS or minutes)", h.TimeLimit)
	}
	// The spec's check refuses the same values at their position
	// (spec.Slurm.Problems).
	for _, p := range j.Slurm.Problems() {
		bad("%s", p.Message)
	}
	if j.SignalSeconds < 0 || j.SignalSeconds > maxSignalS {
		bad("signal seconds %d out of range 0..%d", j.SignalSeconds, maxSignalS)
	}
	for name := range j.Env {
		if !envName.MatchString(name) {
			bad("environment variable name %q is not a valid name", name)
		}
	}
	if len(errs) > 0 {
		sortErrors(errs)
		return fmt.Errorf("render slurm job %q: %w", j.Name, errors.Join(errs...))
	}
	return nil
}

func sortErrors(errs []error) {
	sort.SliceStable(errs, func(a, b int) bool { return errs[a].Error() < errs[b].Error() })
}

func envNames(env map[string]string) []string {
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// trimDirective accepts "--x=y", "#SBATCH --x=y" and surrounding spaces.
func trimDirective(d string) string { return spec.TrimDirective(d) }

// normalizeMem writes sizes the way sbatch reads them: 512GB, 512GiB and
// 512g become 512G; a bare number stays megabytes.
func normalizeMem(s string) string {
	m := memRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return s
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return strconv.FormatUint(n, 10) + strings.ToUpper(m[2])
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func isSpaceOrControl(r rune) bool {
	return r == ' ' || r == '\u00a0' || isControl(r) || r == '\u2028' || r == '\u2029'
}

// shellQuote quotes s for bash, leaving plain words bare.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ParseTimeLimit reads a Slurm time limit: minutes, MM:SS, HH:MM:SS,
// D-HH, D-HH:MM or D-HH:MM:SS. UNLIMITED and INFINITE are 0 (no limit).
func ParseTimeLimit(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if !timeLimit.MatchString(s) {
		return 0, fmt.Errorf("time limit %q is not a Slurm time ([D-]HH:MM:SS, MM:SS or minutes)", s)
	}
	if s == "UNLIMITED" || s == "INFINITE" {
		return 0, nil
	}
	return parseDuration(s)
}
