package state

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLockHeld(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".agora")
	l, err := AcquireLock(dir, "agora apply")
	if err != nil {
		t.Fatal(err)
	}
	info := l.Info()
	if info.PID != os.Getpid() || info.Command != "agora apply" || !strings.HasSuffix(info.Owner, "@"+hostname()) || time.Since(info.Started) > time.Minute {
		t.Errorf("lock info %+v", info)
	}
	// The file holds the JSON LockInfo.
	data, err := os.ReadFile(filepath.Join(dir, LockFile))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk LockInfo
	if err := json.Unmarshal(data, &onDisk); err != nil || onDisk.PID != info.PID || !onDisk.Started.Equal(info.Started) {
		t.Errorf("lock file %s: %v", data, err)
	}

	_, err = AcquireLock(dir, "agora apply")
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("second acquire: %v", err)
	}
	if le.Stale || le.Path != dir || le.Info.PID != info.PID || le.Info.Owner != info.Owner || le.Info.Command != "agora apply" {
		t.Errorf("locked error %+v", le)
	}
	msg := err.Error()
	for _, want := range []string{
		"state " + dir + ` is locked by "agora apply" (pid `,
		info.Owner + ") since " + info.Started.UTC().Format(time.RFC3339) + " (",
		` ago); wait for it to finish, or if that process is gone run "agora force-unlock"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}

	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, LockFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock file left after release: %v", err)
	}
	l2, err := AcquireLock(dir, "agora apply")
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	l2.Release()
}

func TestLockedErrorMessage(t *testing.T) {
	started := time.Now().Add(-5*time.Minute - 400*time.Millisecond)
	e := &LockedError{Path: ".agora", Info: LockInfo{Owner: "root@box", PID: 4242, Command: "agora apply", Started: started}}
	want := `state .agora is locked by "agora apply" (pid 4242, root@box) since ` + started.UTC().Format(time.RFC3339) +
		` (5m ago); wait for it to finish, or if that process is gone run "agora force-unlock"`
	if e.Error() != want {
		t.Errorf("got  %s\nwant %s", e.Error(), want)
	}
	e.Stale = true
	if got := e.Error(); !strings.HasSuffix(got, `(5m ago), but the process is no longer running: the lock is stale; run "agora force-unlock"`) {
		t.Errorf("stale: %s", got)
	}
	e = &LockedError{Path: ".agora"}
	if got := e.Error(); !strings.Contains(got, "unreadable") || !strings.Contains(got, "agora force-unlock") {
		t.Errorf("unreadable: %s", got)
	}
}

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 42 * time.Second: "42s", 5 * time.Minute: "5m", 5*time.Minute + 3*time.Second: "5m3s",
		2*time.Hour + 5*time.Minute + 9*time.Second: "2h5m", 3 * time.Hour: "3h", 76 * time.Hour: "3d4h", 48 * time.Hour: "2d",
	} {
		if got := age(d); got != want {
			t.Errorf("age(%v) = %s, want %s", d, got, want)
		}
	}
}

// deadPID returns the PID of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func writeLockFile(t *testing.T, dir string, info LockInfo) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(info)
	if err := os.WriteFile(filepath.Join(dir, LockFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLockStale(t *testing.T) {
	dir := t.TempDir()
	pid := deadPID(t)
	started := time.Now().Add(-time.Hour).UTC()
	// A dead holder on this host: its lock is taken over.
	writeLockFile(t, dir, LockInfo{Owner: "someone@" + hostname(), PID: pid, Command: "agora apply", Started: started})
	l, err := AcquireLock(dir, "agora apply")
	if err != nil {
		t.Fatal(err)
	}
	if l.TookOver == nil || l.TookOver.PID != pid || l.Info().PID != os.Getpid() {
		t.Fatalf("took over %+v, holds %+v", l.TookOver, l.Info())
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
	var le *LockedError

	// The same dead PID on another host cannot be judged: not stale.
	writeLockFile(t, dir, LockInfo{Owner: "someone@elsewhere.invalid", PID: pid, Command: "agora apply", Started: started})
	_, err = AcquireLock(dir, "agora apply")
	if !errors.As(err, &le) || le.Stale {
		t.Fatalf("other host: %v (%+v)", err, le)
	}
	// A live PID on this host: not stale.
	writeLockFile(t, dir, LockInfo{Owner: "someone@" + hostname(), PID: os.Getpid(), Command: "agora apply", Started: started})
	_, err = AcquireLock(dir, "agora apply")
	if !errors.As(err, &le) || le.Stale {
		t.Fatalf("live pid: %v (%+v)", err, le)
	}
}

func TestForceUnlock(t *testing.T) {
	dir := t.TempDir()
	if _, err := ForceUnlock(dir, false); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "is not locked") ||
		strings.Contains(err.Error(), "force-unlock") {
		t.Fatalf("no lock: %v", err)
	}
	l, err := AcquireLock(dir, "agora apply")
	if err != nil {
		t.Fatal(err)
	}
	// Its holder (this process) is alive on this host: refused unless forced.
	if _, err := ForceUnlock(dir, false); !errors.Is(err, ErrHolderAlive) || !strings.Contains(err.Error(), "-force") {
		t.Fatalf("a live holder: %v", err)
	}
	info, err := ForceUnlock(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if info != l.Info() && !(info.PID == l.Info().PID && info.Started.Equal(l.Info().Started)) {
		t.Errorf("force-unlock returned %+v, want %+v", info, l.Info())
	}
	// Another takes the lock; the forced holder's Release must not remove it.
	l2, err := AcquireLock(dir, "agora apply --other")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err == nil || !strings.Contains(err.Error(), "it was forced") {
		t.Errorf("release of a forced lock: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, LockFile)); err != nil {
		t.Errorf("the new holder's lock is gone: %v", err)
	}
	if err := l2.Release(); err != nil {
		t.Fatal(err)
	}

	// An unreadable lock (a crash between create and write) is reported
	// and can be forced.
	if err := os.WriteFile(filepath.Join(dir, LockFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = AcquireLock(dir, "agora apply")
	var le *LockedError
	if !errors.As(err, &le) || le.Info.PID != 0 || !strings.Contains(err.Error(), "unreadable") {
		t.Fatalf("unreadable lock: %v", err)
	}
	if info, err := ForceUnlock(dir, false); err != nil || info != (LockInfo{}) {
		t.Fatalf("force unreadable: %+v %v", info, err)
	}
	if l, err := AcquireLock(dir, "agora apply"); err != nil {
		t.Fatal(err)
	} else {
		l.Release()
	}
}

// TestForceUnlockOtherHost: a lock from another host cannot be checked:
// the next apply does not take it over, force-unlock removes it.
func TestForceUnlockOtherHost(t *testing.T) {
	dir := t.TempDir()
	writeLockFile(t, dir, LockInfo{Owner: "someone@elsewhere.invalid", PID: os.Getpid(), Command: "agora apply", Started: time.Now().UTC()})
	var le *LockedError
	if _, err := AcquireLock(dir, "agora apply"); !errors.As(err, &le) || le.Stale {
		t.Fatalf("another host's lock: %v", err)
	}
	if info, err := ForceUnlock(dir, false); err != nil || info.Owner != "someone@elsewhere.invalid" {
		t.Fatalf("force-unlock: %+v %v", info, err)
	}
}

// TestStaleTakeOverRace: processes taking over one stale lock at once:
// exactly one gets it.
func TestStaleTakeOverRace(t *testing.T) {
	for round := 0; round < 20; round++ {
		dir := t.TempDir()
		writeLockFile(t, dir, LockInfo{Owner: "someone@" + hostname(), PID: deadPID(t), Command: "agora apply", Started: time.Now().UTC()})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var got []*Lock
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if l, err := AcquireLock(dir, "agora apply"); err == nil {
					mu.Lock()
					got = append(got, l)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(got) != 1 {
			t.Fatalf("round %d: %d holders", round, len(got))
		}
	}
}
