package state

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A state directory whose database is missing, empty or without a schema
// while the directory shows earlier work is refused, not treated as new:
// its $0 of spend and its steps not done would be believed, and the work
// bought again past the budgets. The evidence: data sets in datasets/,
// job directories in runs/, or the serial the last Close wrote to
// SerialFile.

// SerialFile is where Close writes the state's serial, beside the
// database: a database that is then lost or emptied is told from a new one.
const SerialFile = "state.serial"

// LostError says the state database is gone or empty while the directory
// shows earlier work.
type LostError struct {
	Path     string // the database
	Problem  string // "is missing", "is empty (0 bytes)", "has no tables"
	Evidence string // what shows earlier work
}

func (e *LostError) Error() string {
	dir := filepath.Dir(e.Path)
	return fmt.Sprintf("the state database %s %s, but %s shows earlier work (%s): agora will not treat it as a new state, "+
		"whose spend would read as $0 and whose finished steps would be bought again; restore %s from a backup, "+
		"or move %s aside to start afresh", e.Path, e.Problem, dir, e.Evidence, filepath.Base(e.Path), dir)
}

// earlierWork describes what in dir shows earlier applies; "" when
// nothing does.
func earlierWork(dir string) string {
	var ev []string
	if es, err := os.ReadDir(filepath.Join(dir, "datasets")); err == nil {
		n := 0
		for _, e := range es {
			if strings.HasSuffix(e.Name(), ".jsonl") {
				n++
			}
		}
		if n > 0 {
			ev = append(ev, fmt.Sprintf("%d data set%s in datasets/", n, plural(n)))
		}
	}
	if es, err := os.ReadDir(filepath.Join(dir, "runs")); err == nil && len(es) > 0 {
		ev = append(ev, fmt.Sprintf("%d job director%s in runs/", len(es), map[bool]string{true: "y", false: "ies"}[len(es) == 1]))
	}
	if b, err := os.ReadFile(filepath.Join(dir, SerialFile)); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			ev = append(ev, fmt.Sprintf("%s records serial %d", SerialFile, n))
		}
	}
	return strings.Join(ev, ", ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// checkPresent refuses a missing or empty database file in a directory
// that shows earlier work, before SQLite would create a new one.
func checkPresent(path string) error {
	fi, err := os.Stat(path)
	var problem string
	switch {
	case os.IsNotExist(err):
		problem = "is missing"
	case err == nil && fi.Size() == 0:
		problem = "is empty (0 bytes)"
	default:
		return nil
	}
	if ev := earlierWork(filepath.Dir(path)); ev != "" {
		return &LostError{Path: path, Problem: problem, Evidence: ev}
	}
	return nil
}

// writeSerial records the serial beside the database (atomically).
func (s *Store) writeSerial(ctx context.Context) {
	var n int64
	if err := s.wdb.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = 'serial'").Scan(&n); err != nil || n <= 0 {
		return
	}
	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, ".serial-*")
	if err != nil {
		return
	}
	_, werr := tmp.WriteString(strconv.FormatInt(n, 10) + "\n")
	if cerr := tmp.Close(); werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, SerialFile)); err != nil {
		os.Remove(tmp.Name())
	}
}

// Check refuses, as Open would, a state directory whose database is
// missing or empty while the directory shows earlier work; nil for a
// directory without earlier work or with a database file. It creates
// nothing: commands that read the state only when there is one call it.
func Check(dir string) error {
	abs, err := filepath.Abs(filepath.Join(dir, DBFile))
	if err != nil {
		return err
	}
	return checkPresent(abs)
}
