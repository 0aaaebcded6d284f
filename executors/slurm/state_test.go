package slurm

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func local(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02T15:04:05", s, time.Local)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseSqueue(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "squeue.txt"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseSqueue(string(b))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Status{
		"1": {ID: "1", State: Completed, Node: "vm", StartTime: local("2026-11-22T02:29:26"), EndTime: local("2026-11-22T02:29:26")},
		"2": {ID: "2", State: Failed, ExitCode: 3, Reason: "NonZeroExitCode", Node: "vm",
			StartTime: local("2026-11-22T02:29:40"), EndTime: local("2026-11-22T02:29:41"), Elapsed: time.Second},
		// A pending job's StartTime is Slurm's estimate: not reported.
		"8": {ID: "8", State: Pending, Reason: "BeginTime"},
		// A running job's EndTime is its time limit's end: not reported.
		"10": {ID: "10", State: Running, Node: "vm", StartTime: local("2026-11-22T02:32:31"), Elapsed: 2 * time.Second},
		"16": {ID: "16", State: Cancelled, ExitCode: 128 + 15, Signal: 15, Node: "vm",
			StartTime: local("2026-11-22T02:33:26"), EndTime: local("2026-11-22T02:33:27"), Elapsed: time.Second},
		"17": {ID: "17", State: Failed, ExitCode: 128 + 9, Signal: 9, Reason: "JobLaunchFailure", Node: "vm",
			StartTime: local("2026-11-22T02:33:28"), EndTime: local("2026-11-22T02:33:28")},
		"21": {ID: "21", State: Pending, Reason: "ReqNodeNotAvail, UnavailableNodes:gpu[01-02]"},
		"22": {ID: "22", State: Timeout, ExitCode: 128 + 15, Signal: 15, Reason: "TimeLimit", Node: "gpu[01-02]",
			StartTime: local("2026-11-20T08:00:00"), EndTime: local("2026-11-21T10:03:04"),
			Elapsed: 26*time.Hour + 3*time.Minute + 4*time.Second},
		"23": {ID: "23", State: OutOfMemory, Reason: "OutOfMemory", Node: "gpu03",
			StartTime: local("2026-11-22T01:00:00"), EndTime: local("2026-11-22T01:10:00"), Elapsed: 10 * time.Minute},
		"24": {ID: "24", State: NodeFail, Reason: "NodeDown", Node: "gpu04",
			StartTime: local("2026-11-22T01:00:00"), EndTime: local("2026-11-22T01:30:00"), Elapsed: 30 * time.Minute},
		"25": {ID: "25", State: Running, Node: "gpu05", StartTime: local("2026-11-22T01:00:00"), Elapsed: time.Hour},
		"26": {ID: "26", State: Requeued, Reason: "JobHoldMaxRequeue"},
		"27": {ID: "27", State: Preempted, Node: "gpu06",
			StartTime: local("2026-11-22T01:00:00"), EndTime: local("2026-11-22T01:05:00"), Elapsed: 5 * time.Minute},
	}
	if len(got) != len(want) {
		t.Errorf("parsed %d jobs, want %d", len(got), len(want))
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			t.Errorf("job %s missing", id)
			continue
		}
		if !g.StartTime.Equal(w.StartTime) || !g.EndTime.Equal(w.EndTime) {
			t.Errorf("job %s: times %v..%v, want %v..%v", id, g.StartTime, g.EndTime, w.StartTime, w.EndTime)
		}
		g.StartTime, g.EndTime, w.StartTime, w.EndTime = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if g != w {
			t.Errorf("job %s:\n got %+v\nwant %+v", id, g, w)
		}
	}
}

func TestParseSqueueRejectsOtherFormats(t *testing.T) {
	for _, out := range []string{
		"1 COMPLETED None\n",                    // the default format
		"1|COMPLETED|0|None|vm|\n",              // too few fields
		"x|COMPLETED|0|None|vm|N/A|N/A|0:00|\n", // not an id
		"1|FAILED|three|None|vm|N/A|N/A|0:00|\n",
		"1|FAILED|0|None|vm|yesterday|N/A|0:00|\n",
	} {
		if _, err := parseSqueue(out); err == nil {
			t.Errorf("parseSqueue(%q) did not fail", out)
		}
	}
	if got, err := parseSqueue(""); err != nil || len(got) != 0 {
		t.Errorf("empty output: %v, %v", got, err)
	}
}

func TestParseScontrol(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "scontrol-failed.txt"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseScontrol(string(b))
	if err != nil {
		t.Fatal(err)
	}
	want := Status{ID: "4", State: Failed, ExitCode: 3, Reason: "NonZeroExitCode", Node: "vm",
		StartTime: local("2026-11-22T02:29:46"), EndTime: local("2026-11-22T02:29:47"), Elapsed: time.Second}
	if st != want {
		t.Errorf("\n got %+v\nwant %+v", st, want)
	}
	if kv := scontrolFields(string(b)); kv["WorkDir"] != "/tmp/my dir" {
		t.Errorf("WorkDir = %q, want a value with a space", kv["WorkDir"])
	}

	b, err = os.ReadFile(filepath.Join("testdata", "scontrol-pending.txt"))
	if err != nil {
		t.Fatal(err)
	}
	st, err = parseScontrol(string(b))
	if err != nil {
		t.Fatal(err)
	}
	want = Status{ID: "31", State: Pending, ExitCode: 128 + 15, Signal: 15, Reason: "ReqNodeNotAvail, UnavailableNodes:gpu[01-02]"}
	if st != want {
		t.Errorf("\n got %+v\nwant %+v", st, want)
	}
}

func TestDecodeExit(t *testing.T) {
	for in, want := range map[string][2]int{
		"0": {0, 0}, "768": {3, 0}, "256": {1, 0}, "9": {137, 9}, "15": {143, 15},
		"3:0": {3, 0}, "0:9": {137, 9}, "1:15": {1, 15}, "": {0, 0}, "N/A": {0, 0},
	} {
		code, sig, err := decodeExit(in)
		if err != nil || code != want[0] || sig != want[1] {
			t.Errorf("decodeExit(%q) = %d, %d, %v; want %d, %d", in, code, sig, err, want[0], want[1])
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0:00": 0, "0:07": 7 * time.Second, "12:34": 12*time.Minute + 34*time.Second,
		"1:02:03": time.Hour + 2*time.Minute + 3*time.Second, "90": 90 * time.Minute,
		"2-00:00:01": 48*time.Hour + time.Second, "1-12": 36 * time.Hour, "1-01:30": 25*time.Hour + 30*time.Minute,
		"INVALID": 0, "N/A": 0,
	} {
		got, err := parseDuration(in)
		if err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"x", "1:2:3:4", "a-01:00:00", "1:-2"} {
		if _, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) did not fail", in)
		}
	}
}

func TestParseState(t *testing.T) {
	for in, want := range map[string]State{
		"PENDING": Pending, "RUNNING": Running, "COMPLETING": Running, "CONFIGURING": Running,
		"SUSPENDED": Running, "COMPLETED": Completed, "FAILED": Failed, "SPECIAL_EXIT": Failed,
		"TIMEOUT": Timeout, "DEADLINE": Timeout, "NODE_FAIL": NodeFail, "BOOT_FAIL": NodeFail,
		"PREEMPTED": Preempted, "OUT_OF_MEMORY": OutOfMemory, "CANCELLED": Cancelled,
		"CANCELLED by 0": Cancelled, "REQUEUED": Requeued, "REQUEUE_HOLD": Requeued,
		"RESV_DEL_HOLD": Pending, "": Unknown, "cd": Completed, "NEW_STATE": "NEW_STATE",
	} {
		if got := ParseState(in); got != want {
			t.Errorf("ParseState(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	for s, want := range map[State]Action{
		Pending: Wait, Running: Wait, Requeued: Wait, "NEW_STATE": Wait,
		Completed:   Succeed,
		NodeFail:    Requeue,
		Preempted:   Requeue,
		Failed:      Resubmit,
		Timeout:     Resubmit,
		OutOfMemory: Resubmit,
		Cancelled:   GiveUp,
		Unknown:     CheckOutputs,
	} {
		if got := Classify(s); got != want {
			t.Errorf("Classify(%s) = %v, want %v", s, got, want)
		}
		if (Classify(s) == Wait) == s.Done() {
			t.Errorf("%s: Done() = %v disagrees with Classify %v", s, s.Done(), Classify(s))
		}
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(ExitMarker(dir, "7"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ExitMarker(dir, "8"), []byte("3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ExitMarker(dir, "9"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]State{"7": Completed, "8": Failed, "10": Unknown} {
		st, err := Resolve(dir, Status{ID: id, State: Unknown})
		if err != nil || st.State != want {
			t.Errorf("Resolve(%s) = %v, %v; want %v", id, st.State, err, want)
		}
	}
	if st, _ := Resolve(dir, Status{ID: "8", State: Unknown}); st.ExitCode != 3 {
		t.Errorf("Resolve(8) exit code %d, want 3", st.ExitCode)
	}
	if _, err := Resolve(dir, Status{ID: "9", State: Unknown}); err == nil {
		t.Error("a garbled marker is not an error")
	}
	// A job still known to Slurm is left alone.
	if st, _ := Resolve(dir, Status{ID: "8", State: Running}); st.State != Running {
		t.Errorf("Resolve changed a running job to %v", st.State)
	}
}
