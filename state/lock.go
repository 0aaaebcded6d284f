package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// LockFile is the name of the lock inside the state directory.
const LockFile = "lock"

// LockInfo says who holds the state lock; it is the lock file's JSON.
type LockInfo struct {
	Owner   string    `json:"owner"` // user@host
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Started time.Time `json:"started"`
}

// host is the host part of Owner.
func (i LockInfo) host() string {
	if at := strings.LastIndexByte(i.Owner, '@'); at >= 0 {
		return i.Owner[at+1:]
	}
	return ""
}

// LockedError is AcquireLock's error when the state is locked.
type LockedError struct {
	Path string   // the state directory
	Info LockInfo // the holder; zero when the lock file is unreadable
	// Stale is true when the holder ran on this host and its process is
	// no longer alive.
	Stale bool
}

func (e *LockedError) Error() string {
	if e.Info.PID == 0 {
		return fmt.Sprintf("state %s is locked, but its lock file %s is unreadable; if no agora is running, run \"agora force-unlock\"",
			e.Path, filepath.Join(e.Path, LockFile))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "state %s is locked by %q (pid %d, %s)", e.Path, e.Info.Command, e.Info.PID, e.Info.Owner)
	if !e.Info.Started.IsZero() {
		fmt.Fprintf(&b, " since %s (%s ago)", e.Info.Started.UTC().Format(time.RFC3339), age(time.Since(e.Info.Started)))
	}
	if e.Stale {
		b.WriteString(", but the process is no longer running: the lock is stale; run \"agora force-unlock\"")
	} else {
		b.WriteString("; wait for it to finish, or if that process is gone run \"agora force-unlock\"")
	}
	return b.String()
}

// age renders a duration compactly: 42s, 5m, 5m3s, 2h5m, 3d4h.
func age(d time.Duration) string {
	if d < time.Second {
		return "0s"
	}
	d = d.Round(time.Second)
	days := d / (24 * time.Hour)
	h := (d % (24 * time.Hour)) / time.Hour
	m := (d % time.Hour) / time.Minute
	sec := (d % time.Minute) / time.Second
	switch {
	case days > 0:
		if h > 0 {
			return fmt.Sprintf("%dd%dh", days, h)
		}
		return fmt.Sprintf("%dd", days)
	case h > 0:
		if m > 0 {
			return fmt.Sprintf("%dh%dm", h, m)
		}
		return fmt.Sprintf("%dh", h)
	case m > 0:
		if sec > 0 {
			return fmt.Sprintf("%dm%ds", m, sec)
		}
		return fmt.Sprintf("%dm", m)
	}
	return fmt.Sprintf("%ds", sec)
}

// Lock is a held state lock.
type Lock struct {
	path string
	info LockInfo
	// TookOver is the holder of the stale lock this one replaced (its
	// process, on this host, was gone), or nil.
	TookOver *LockInfo
}

// Info is what the lock file says about its holder.
func (l *Lock) Info() LockInfo { return l.info }

// AcquireLock takes the lock of state directory dir (creating dir), for
// command (e.g. "agora apply"): it creates dir/lock exclusively and writes
// and syncs the holder's LockInfo into it. A lock whose holder ran on this
// host and is no longer alive is taken over (Lock.TookOver says whose).
// When another holds the lock it returns a *LockedError.
func AcquireLock(dir, command string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock state: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	info := LockInfo{Owner: owner(), PID: os.Getpid(), Command: command, Started: time.Now().UTC()}
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("lock state: %w", err)
	}
	data = append(data, '\n')
	var tookOver *LockInfo
	for try := 0; ; try++ {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			if err := writeLock(f, data); err != nil {
				os.Remove(path)
				return nil, fmt.Errorf("lock state: %w", err)
			}
			syncDir(dir)
			return &Lock{path: path, info: info, TookOver: tookOver}, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("lock state: %w", err)
		}
		held, err := readLock(path)
		if errors.Is(err, fs.ErrNotExist) && try < 3 {
			continue // released meanwhile: try again
		}
		le := &LockedError{Path: dir}
		if err == nil {
			le.Info = held
			le.Stale = held.PID > 0 && held.host() == hostname() && !processAlive(held.PID)
		}
		if le.Stale && try < 3 && removeStale(path, held) {
			tookOver = &held
			continue
		}
		return nil, le
	}
}

// removeStale removes the lock file at path if it still holds stale, the
// lock of a holder found dead; it reports whether it did. Takers of a
// stale lock go one at a time, through path.takeover, created
// exclusively: so only the one that finds the stale lock still there
// removes it, and never a lock taken since. (A taker killed meanwhile
// leaves path.takeover behind: the stale lock then needs force-unlock.)
func removeStale(path string, stale LockInfo) bool {
	mu := path + ".takeover"
	f, err := os.OpenFile(mu, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return false
	}
	f.Close()
	defer os.Remove(mu)
	got, err := readLock(path)
	if err != nil || got.PID != stale.PID || got.Owner != stale.Owner || !got.Started.Equal(stale.Started) {
		return false
	}
	if os.Remove(path) != nil {
		return false
	}
	syncDir(filepath.Dir(path))
	return true
}

func writeLock(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a created or removed directory entry durable (best effort).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// readLock reads and decodes a lock file.
func readLock(path string) (LockInfo, error) {
	var info LockInfo
	data, err := os.ReadFile(path)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return LockInfo{}, fmt.Errorf("decode %s: %w", path, err)
	}
	return info, nil
}

// Release removes the lock, unless it is no longer this lock's (it was
// forced and taken by another), which is an error.
func (l *Lock) Release() error {
	held, err := readLock(l.path)
	if err != nil {
		return fmt.Errorf("release lock: %w", err)
	}
	if held.PID != l.info.PID || !held.Started.Equal(l.info.Started) || held.Owner != l.info.Owner {
		return fmt.Errorf("release lock: %s is now held by %q (pid %d, %s): it was forced", l.path, held.Command, held.PID, held.Owner)
	}
	if err := os.Remove(l.path); err != nil {
		return fmt.Errorf("release lock: %w", err)
	}
	syncDir(filepath.Dir(l.path))
	return nil
}

// ErrHolderAlive is ForceUnlock's error, without force, when the lock's
// holder is a process alive on this host.
var ErrHolderAlive = errors.New("its holder is running")

// ForceUnlock removes the lock of state directory dir and returns the
// holder (zero when the lock file was unreadable). A holder alive on this
// host keeps its lock unless force is set (the error wraps
// ErrHolderAlive); one on another host cannot be checked and loses it. It
// is an error, wrapping fs.ErrNotExist, when there is no lock.
func ForceUnlock(dir string, force bool) (LockInfo, error) {
	path := filepath.Join(dir, LockFile)
	info, err := readLock(path)
	if errors.Is(err, fs.ErrNotExist) {
		return LockInfo{}, fmt.Errorf("state %s is not locked: %w", dir, fs.ErrNotExist)
	}
	if err == nil && !force && info.PID > 0 && info.host() == hostname() && processAlive(info.PID) {
		return info, fmt.Errorf("state %s is locked by %q (pid %d, %s): %w; wait for it to finish or stop it, or pass -force to remove the lock all the same",
			dir, info.Command, info.PID, info.Owner, ErrHolderAlive)
	}
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return LockInfo{}, fmt.Errorf("state %s is not locked: %w", dir, fs.ErrNotExist)
		}
		return LockInfo{}, err
	}
	syncDir(dir)
	return info, nil // an unreadable lock is removed all the same
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// owner is user@host for this process.
func owner() string {
	name := ""
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if name == "" {
		name = os.Getenv("USER")
	}
	if name == "" {
		name = strconv.Itoa(os.Getuid())
	}
	return name + "@" + hostname()
}

// Holder reads the lock of state directory dir. locked is false when
// there is none. live is false only when the holder ran on this host and
// its process is gone: a holder on another host cannot be checked and is
// taken to be alive.
func Holder(dir string) (info LockInfo, locked, live bool, err error) {
	info, err = readLock(filepath.Join(dir, LockFile))
	if errors.Is(err, fs.ErrNotExist) {
		return LockInfo{}, false, false, nil
	}
	if err != nil {
		return LockInfo{}, true, true, err
	}
	return info, true, !(info.PID > 0 && info.host() == hostname() && !processAlive(info.PID)), nil
}
