package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
)

// Client runs Slurm's commands (sbatch, squeue, scontrol, scancel, sinfo)
// as processes. The zero value uses the commands found in PATH. A Client
// holds no state and is safe for concurrent use.
type Client struct {
	// Sbatch, Squeue, Scontrol, Scancel, Sacct and Sinfo name the
	// binaries; empty means the plain name, looked up in PATH. Tests point
	// them at stand-ins.
	Sbatch, Squeue, Scontrol, Scancel, Sacct, Sinfo string
	// Env is added to the environment of every command (SLURM_CONF=…).
	Env []string

	// noAccounting is set once sacct said the cluster keeps no
	// accounting: it is not asked again.
	noAccounting atomic.Bool
}

// sacctFormat asks sacct for the fields of Status (--parsable2: "|"
// between fields, none after the last).
const sacctFormat = "JobIDRaw,State,ExitCode,Reason,NodeList,Start,End,Elapsed"

// accountingDisabled is what sacct says on a cluster without accounting.
const accountingDisabled = "accounting storage is disabled"

// squeueFormat asks for the fields of Status, "|"-separated; a ":" with
// no width prints each field whole.
const squeueFormat = "JobID:|,State:|,exit_code:|,Reason:|,NodeList:|,StartTime:|,EndTime:|,TimeUsed:|"

// squeueFields is the number of "|"-separated fields of one line,
// counting the empty one after the trailing "|".
const squeueFields = 9

var jobIDRe = regexp.MustCompile(`^[0-9]+(_[0-9]+)?$`)

// errInvalidJobID is what Slurm says of a job id it does not know.
const invalidJobID = "Invalid job id specified"

// Submit submits an sbatch script (as rendered by Render) with
// `sbatch --parsable`, the script on stdin, and returns the job id. The
// sbatch process inherits this process's environment, so variables the
// script exports by name must be set here; SubmitJob sets them for you.
//
// Record the id before doing anything else: a job that was submitted but
// whose id was lost is a job submitted twice on the next attempt.
func (c *Client) Submit(ctx context.Context, script string) (string, error) {
	return c.submit(ctx, script, nil)
}

// SubmitJob renders j and submits it with j.Env's values in sbatch's
// environment (so --export passes them to the job; they are never written
// into the script).
func (c *Client) SubmitJob(ctx context.Context, j Job) (string, error) {
	script, err := Render(j)
	if err != nil {
		return "", err
	}
	env := make([]string, 0, len(j.Env))
	for _, k := range envNames(j.Env) {
		env = append(env, k+"="+j.Env[k])
	}
	return c.submit(ctx, script, env)
}

func (c *Client) submit(ctx context.Context, script string, env []string) (string, error) {
	if strings.TrimSpace(script) == "" {
		return "", errors.New("sbatch: empty script")
	}
	out, err := c.run(ctx, c.bin(c.Sbatch, "sbatch"), script, env, "--parsable")
	if err != nil {
		return "", err
	}
	return parseParsable(out)
}

// parseParsable reads `sbatch --parsable` output: "ID" or "ID;cluster",
// possibly after warning lines.
func parseParsable(out string) (string, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	id, _, _ := strings.Cut(last, ";")
	if !jobIDRe.MatchString(id) {
		return "", fmt.Errorf("sbatch: unexpected output %q, want a job id", strings.TrimSpace(out))
	}
	return id, nil
}

// Poll returns the status of each of ids with ONE squeue call
// (`squeue --all -t all -h -j IDS -O …`). An id that squeue does not list
// is looked up with `scontrol show job -o ID`; if slurmctld no longer
// knows it either, its State is Unknown: it left the queue (see Resolve).
// An error means nothing could be learnt this time (slurmctld down or
// busy, a malformed reply): poll again later rather than treating jobs as
// gone.
func (c *Client) Poll(ctx context.Context, ids []string) (map[string]Status, error) {
	ids, err := cleanIDs(ids)
	if err != nil {
		return nil, err
	}
	res := make(map[string]Status, len(ids))
	if len(ids) == 0 {
		return res, nil
	}
	out, err := c.run(ctx, c.bin(c.Squeue, "squeue"), "", nil,
		"--all", "--noheader", "--states=all", "--jobs="+strings.Join(ids, ","), "--Format="+squeueFormat)
	allUnknown := false
	if err != nil {
		// squeue -j with a single unknown id fails; with several it does not.
		if !strings.Contains(err.Error(), invalidJobID) {
			return nil, err
		}
		allUnknown, out = true, ""
	}
	listed, err := parseSqueue(out)
	if err != nil {
		return nil, err
	}
	// Jobs that left the queue: sacct knows how they ended, when the
	// cluster keeps accounting (one call for all of them).
	var gone []string
	for _, id := range ids {
		if _, ok := listed[id]; !ok {
			gone = append(gone, id)
		}
	}
	for id, st := range c.accounted(ctx, gone) {
		listed[id] = st
	}
	for _, id := range ids {
		if st, ok := listed[id]; ok {
			res[id] = st
			continue
		}
		if allUnknown {
			res[id] = Status{ID: id, State: Unknown}
			continue
		}
		st, err := c.showJob(ctx, id)
		if err != nil {
			return nil, err
		}
		res[id] = st
	}
	return res, nil
}

// accounted asks sacct about jobs squeue no longer lists. It returns
// nothing when the cluster keeps no accounting (remembered) or sacct
// fails: Poll then falls back to scontrol and the caller to the jobs'
// exit markers.
func (c *Client) accounted(ctx context.Context, ids []string) map[string]Status {
	if len(ids) == 0 || c.noAccounting.Load() {
		return nil
	}
	out, err := c.run(ctx, c.bin(c.Sacct, "sacct"), "", nil,
		"--noheader", "--parsable2", "--allocations", "--jobs="+strings.Join(ids, ","), "--format="+sacctFormat)
	if err != nil {
		if strings.Contains(err.Error(), accountingDisabled) || errors.Is(err, exec.ErrNotFound) {
			c.noAccounting.Store(true)
		}
		return nil
	}
	res, err := parseSacct(out)
	if err != nil {
		return nil
	}
	return res
}

// parseSacct reads `sacct --parsable2 --format=sacctFormat` lines.
func parseSacct(out string) (map[string]Status, error) {
	res := make(map[string]Status)
	for n, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) != 8 {
			return nil, fmt.Errorf("sacct line %d: %d fields, want 8: %q", n+1, len(f), line)
		}
		st := Status{ID: f[0], State: ParseState(f[1]), Reason: reason(f[3])}
		if !jobIDRe.MatchString(st.ID) {
			continue // a step (123.batch) or an array record
		}
		if f[4] != "None assigned" {
			st.Node = f[4]
		}
		var err error
		if st.ExitCode, st.Signal, err = decodeExit(f[2]); err != nil {
			return nil, fmt.Errorf("sacct line %d: %w", n+1, err)
		}
		if err := st.setTimes(f[5], f[6], f[7]); err != nil {
			return nil, fmt.Errorf("sacct line %d: %w", n+1, err)
		}
		res[st.ID] = st
	}
	return res, nil
}

// showJob is Poll's fallback for one id squeue did not list.
func (c *Client) showJob(ctx context.Context, id string) (Status, error) {
	out, err := c.run(ctx, c.bin(c.Scontrol, "scontrol"), "", nil, "--oneliner", "show", "job", id)
	if err != nil {
		if strings.Contains(err.Error(), invalidJobID) {
			return Status{ID: id, State: Unknown}, nil
		}
		return Status{}, err
	}
	st, err := parseScontrol(out)
	if err != nil {
		return Status{}, err
	}
	if st.ID == "" {
		return Status{ID: id, State: Unknown}, nil
	}
	return st, nil
}

// Cancel cancels jobs with scancel. Jobs that already ended or left the
// queue are not an error.
func (c *Client) Cancel(ctx context.Context, ids ...string) error {
	ids, err := cleanIDs(ids)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	_, err = c.run(ctx, c.bin(c.Scancel, "scancel"), "", nil, ids...)
	if err != nil && strings.Contains(err.Error(), invalidJobID) {
		return nil
	}
	return err
}

// Requeue puts a job back in the queue under the same id with
// `scontrol requeue`: a running job is killed first, a finished one
// (within MinJobAge) pends again. Slurm refuses for jobs submitted
// without --requeue; resubmit those instead.
func (c *Client) Requeue(ctx context.Context, id string) error {
	ids, err := cleanIDs([]string{id})
	if err != nil {
		return err
	}
	_, err = c.run(ctx, c.bin(c.Scontrol, "scontrol"), "", nil, "requeue", ids[0])
	return err
}

func cleanIDs(ids []string) ([]string, error) {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		id = strings.TrimSpace(id)
		if !jobIDRe.MatchString(id) {
			return nil, fmt.Errorf("slurm job id %q is not a number", id)
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (c *Client) bin(set, def string) string {
	if set != "" {
		return set
	}
	return def
}

// run runs one command and returns its stdout; a failure carries the
// command, its exit status and its stderr.
func (c *Client) run(ctx context.Context, bin, stdin string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	if len(c.Env) > 0 || len(env) > 0 {
		cmd.Env = append(append(os.Environ(), c.Env...), env...)
	}
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("%s %s: %w", bin, firstArg(args), ctx.Err())
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		if msg != "" {
			return "", fmt.Errorf("%s %s: %w: %s", bin, firstArg(args), err, msg)
		}
		return "", fmt.Errorf("%s %s: %w", bin, firstArg(args), err)
	}
	return stdout.String(), nil
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// parseSqueue reads the output of squeue -h -O squeueFormat.
func parseSqueue(out string) (map[string]Status, error) {
	res := make(map[string]Status)
	for n, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "CLUSTER:") {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) != squeueFields {
			return nil, fmt.Errorf("squeue line %d: %d fields, want %d: %q", n+1, len(f), squeueFields, line)
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		st := Status{ID: f[0], State: ParseState(f[1]), Reason: reason(f[3]), Node: f[4]}
		if !jobIDRe.MatchString(st.ID) {
			return nil, fmt.Errorf("squeue line %d: job id %q is not a number", n+1, st.ID)
		}
		var err error
		if st.ExitCode, st.Signal, err = decodeExit(f[2]); err != nil {
			return nil, fmt.Errorf("squeue line %d: %w", n+1, err)
		}
		if err := st.setTimes(f[5], f[6], f[7]); err != nil {
			return nil, fmt.Errorf("squeue line %d: %w", n+1, err)
		}
		res[st.ID] = st
	}
	return res, nil
}

// parseScontrol reads `scontrol show job --oneliner` output: KEY=VALUE
// pairs separated by spaces, where a value may itself hold spaces
// ("Reason=ReqNodeNotAvail, UnavailableNodes:gpu01").
func parseScontrol(out string) (Status, error) {
	kv := scontrolFields(out)
	if kv["JobId"] == "" {
		return Status{}, nil
	}
	st := Status{ID: kv["JobId"], State: ParseState(kv["JobState"]), Reason: reason(kv["Reason"])}
	if n := kv["NodeList"]; n != "(null)" {
		st.Node = n
	}
	var err error
	if st.ExitCode, st.Signal, err = decodeExit(kv["ExitCode"]); err != nil {
		return Status{}, fmt.Errorf("scontrol job %s: %w", st.ID, err)
	}
	if err := st.setTimes(kv["StartTime"], kv["EndTime"], kv["RunTime"]); err != nil {
		return Status{}, fmt.Errorf("scontrol job %s: %w", st.ID, err)
	}
	return st, nil
}

var scontrolKey = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_/:]*=`)

func scontrolFields(out string) map[string]string {
	kv := make(map[string]string)
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	key := ""
	for _, tok := range strings.Split(line, " ") {
		if loc := scontrolKey.FindStringIndex(tok); loc != nil {
			key = tok[:loc[1]-1]
			if _, dup := kv[key]; !dup {
				kv[key] = tok[loc[1]:]
			}
			continue
		}
		if key != "" && tok != "" {
			kv[key] += " " + tok
		}
	}
	return kv
}

// setTimes fills the times: StartTime only once the job has started (for
// a pending job Slurm prints its estimate), EndTime only once it ended
// (for a running job Slurm prints the time limit's end).
func (st *Status) setTimes(start, end, elapsed string) error {
	var err error
	if st.State != Pending && st.State != Requeued {
		if st.StartTime, err = parseTime(start); err != nil {
			return err
		}
	}
	if st.State.Done() {
		if st.EndTime, err = parseTime(end); err != nil {
			return err
		}
	}
	st.Elapsed, err = parseDuration(elapsed)
	return err
}

func reason(s string) string {
	if s == "None" || s == "(null)" {
		return ""
	}
	return s
}
