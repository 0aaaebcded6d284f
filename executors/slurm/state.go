package slurm

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// State is a job's state as agora sees it: Slurm's long state names, the
// rarer ones folded into these (see ParseState), plus Unknown for a job
// that is no longer in the queue.
type State string

// The states agora distinguishes.
const (
	Pending     State = "PENDING"
	Running     State = "RUNNING"
	Completed   State = "COMPLETED"
	Failed      State = "FAILED"
	Timeout     State = "TIMEOUT"
	NodeFail    State = "NODE_FAIL"
	Preempted   State = "PREEMPTED"
	OutOfMemory State = "OUT_OF_MEMORY"
	Cancelled   State = "CANCELLED"
	Requeued    State = "REQUEUED"
	// Unknown: the job has left the queue (slurmctld forgets finished jobs
	// MinJobAge seconds after they end, 300 by default) or never existed.
	// Without accounting (sacct) Slurm cannot say how it ended: resolve it
	// from the job's own outputs, e.g. with ReadExitMarker.
	Unknown State = "UNKNOWN"
)

// ParseState maps a Slurm job state name (squeue %T / -O State, scontrol
// JobState) to a State. Names agora does not distinguish are folded:
// the transitional ones (CONFIGURING, COMPLETING, RESIZING, SIGNALING,
// STAGE_OUT, SUSPENDED, STOPPED) to Running, REQUEUE_HOLD and REQUEUE_FED
// to Requeued, RESV_DEL_HOLD to Pending, BOOT_FAIL to NodeFail, DEADLINE
// to Timeout, SPECIAL_EXIT to Failed and REVOKED to Cancelled. A name it
// does not know is returned as is, which Classify treats as still active.
func ParseState(s string) State {
	s = strings.ToUpper(strings.TrimSpace(s))
	// sacct-style "CANCELLED by 0" and flag suffixes such as "+".
	if i := strings.IndexAny(s, " +"); i >= 0 {
		s = s[:i]
	}
	switch s {
	case "PENDING", "PD":
		return Pending
	case "RUNNING", "R", "CONFIGURING", "CF", "COMPLETING", "CG", "RESIZING", "RS",
		"SIGNALING", "SI", "STAGE_OUT", "SO", "SUSPENDED", "S", "STOPPED", "ST":
		return Running
	case "COMPLETED", "CD":
		return Completed
	case "FAILED", "F", "SPECIAL_EXIT", "SE":
		return Failed
	case "TIMEOUT", "TO", "DEADLINE", "DL":
		return Timeout
	case "NODE_FAIL", "NF", "BOOT_FAIL", "BF":
		return NodeFail
	case "PREEMPTED", "PR":
		return Preempted
	case "OUT_OF_MEMORY", "OOM":
		return OutOfMemory
	case "CANCELLED", "CA", "REVOKED", "RV":
		return Cancelled
	case "REQUEUED", "RQ", "REQUEUE_HOLD", "RH", "REQUEUE_FED", "RF":
		return Requeued
	case "RESV_DEL_HOLD", "RD":
		return Pending
	case "", "UNKNOWN":
		return Unknown
	}
	return State(s)
}

// Status is what Poll knows about one job.
type Status struct {
	ID    string
	State State
	// ExitCode is the batch script's exit status once it has ended (0
	// while it runs); 128+N when signal N killed it, as a shell reports
	// it. A requeued job keeps its previous run's code until it ends again.
	ExitCode int
	// Signal is the signal that ended the script, 0 if none.
	Signal int
	// Reason is Slurm's reason for the state ("Resources", "BeginTime",
	// "NonZeroExitCode", …); empty for "None".
	Reason string
	// Node is the node list of a started job ("gpu[01-02]").
	Node string
	// StartTime is set once the job has started, EndTime once it ended.
	StartTime, EndTime time.Time
	// Elapsed is the run time of the current or last run.
	Elapsed time.Duration
}

// Action is what agora's policy does about a job in a given state.
type Action int

// The actions of Classify.
const (
	// Wait: the job is queued or running; poll again.
	Wait Action = iota
	// Succeed: the job completed with exit status 0.
	Succeed
	// Requeue: the job lost its node (NODE_FAIL) or was PREEMPTED, through
	// no fault of its own. A job submitted with --requeue is normally put
	// back by Slurm itself and shows as PENDING again; seeing these states
	// means it was not: requeue it (Client.Requeue, same id, same script)
	// and, if Slurm refuses, submit it again without counting an attempt.
	Requeue
	// Resubmit: the job FAILED, hit its TIMEOUT or ran OUT_OF_MEMORY.
	// Submit it again while the attempts stay within the configured count
	// (the caller counts), then give up.
	Resubmit
	// GiveUp: the job was CANCELLED, by a user or an admin; never retried.
	GiveUp
	// CheckOutputs: the job left the queue (Unknown): look at what it left
	// behind (Resolve, ReadExitMarker, the expected outputs) to tell
	// success from failure.
	CheckOutputs
)

func (a Action) String() string {
	switch a {
	case Wait:
		return "wait"
	case Succeed:
		return "succeed"
	case Requeue:
		return "requeue"
	case Resubmit:
		return "resubmit"
	case GiveUp:
		return "give up"
	case CheckOutputs:
		return "check outputs"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Classify is agora's retry policy for Slurm jobs:
//
//	PENDING, RUNNING, REQUEUED          Wait
//	COMPLETED                           Succeed
//	NODE_FAIL, PREEMPTED                Requeue  (not the job's fault)
//	FAILED, TIMEOUT, OUT_OF_MEMORY      Resubmit (up to N attempts)
//	CANCELLED                           GiveUp   (a person decided)
//	UNKNOWN (left the queue)            CheckOutputs (Resolve, then outputs)
//
// States it does not know mean Wait: Slurm reports its transitional
// states only while a job is still in the queue.
func Classify(s State) Action {
	switch s {
	case Completed:
		return Succeed
	case NodeFail, Preempted:
		return Requeue
	case Failed, Timeout, OutOfMemory:
		return Resubmit
	case Cancelled:
		return GiveUp
	case Unknown:
		return CheckOutputs
	}
	return Wait
}

// Done reports whether s is final for this run of the job.
func (s State) Done() bool {
	switch s {
	case Completed, Failed, Timeout, NodeFail, Preempted, OutOfMemory, Cancelled, Unknown:
		return true
	}
	return false
}

// decodeExit turns Slurm's exit code field into (exit status, signal).
// squeue -O exit_code prints the raw wait status (768 for exit 3, 9 for
// SIGKILL); scontrol and sacct print "3:0" / "0:9".
func decodeExit(s string) (code, sig int, err error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "N/A" || s == "(null)" {
		return 0, 0, nil
	}
	if a, b, ok := strings.Cut(s, ":"); ok {
		code, err1 := strconv.Atoi(a)
		sig, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil {
			return 0, 0, fmt.Errorf("exit code %q is not EXIT:SIGNAL", s)
		}
		if sig != 0 && code == 0 {
			code = 128 + sig
		}
		return code, sig, nil
	}
	raw, err := strconv.Atoi(s)
	if err != nil || raw < 0 {
		return 0, 0, fmt.Errorf("exit code %q is not a wait status", s)
	}
	if sig := raw & 0x7f; sig != 0 {
		return 128 + sig, sig, nil
	}
	return (raw >> 8) & 0xff, 0, nil
}

// parseTime reads Slurm's local timestamps (2026-11-22T02:33:26);
// N/A, NONE, Unknown and empty are the zero time.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "", "N/A", "NONE", "None", "Unknown", "(null)", "0":
		return time.Time{}, nil
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05", s, time.Local)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %w", s, err)
	}
	return t, nil
}

// parseDuration reads Slurm's times: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM,
// D-HH:MM:SS; "INVALID", "N/A" and empty are zero.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "", "N/A", "INVALID", "UNLIMITED", "NONE":
		return 0, nil
	}
	in := s
	days, hasDays := 0, false
	if d, rest, ok := strings.Cut(s, "-"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("duration %q: bad days", in)
		}
		days, hasDays, s = n, true, rest
	}
	parts := strings.Split(s, ":")
	if len(parts) > 3 {
		return 0, fmt.Errorf("duration %q: too many fields", in)
	}
	var secs int
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("duration %q: bad field %q", in, p)
		}
		secs = secs*60 + n
	}
	if hasDays {
		// After "D-" the fields are HH, HH:MM or HH:MM:SS.
		for range 3 - len(parts) {
			secs *= 60
		}
	} else if len(parts) == 1 {
		secs *= 60 // a bare number is minutes
	}
	return time.Duration(days)*24*time.Hour + time.Duration(secs)*time.Second, nil
}
