package slurm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// ReadExitMarker reads the exit status that job id (rendered with Dir
// dir) left in ExitMarker(dir, id). ok is false when there is none: the
// job never finished its body (cancelled, timed out, lost with its node,
// killed for memory) or has not yet.
func ReadExitMarker(dir, id string) (code int, ok bool, err error) {
	b, err := os.ReadFile(ExitMarker(dir, id))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read exit marker of job %s: %w", id, err)
	}
	code, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, false, fmt.Errorf("exit marker of job %s: %q is not a number", id, strings.TrimSpace(string(b)))
	}
	return code, true, nil
}

// Resolve turns the Unknown status of a job that left the queue into
// Completed or Failed from its exit marker. Without a marker the job
// stays Unknown: it was killed before its body ended, and only the
// expected outputs can tell more.
func Resolve(dir string, st Status) (Status, error) {
	if st.State != Unknown {
		return st, nil
	}
	code, ok, err := ReadExitMarker(dir, st.ID)
	if err != nil || !ok {
		return st, err
	}
	st.ExitCode = code
	st.State = Completed
	if code != 0 {
		st.State = Failed
	}
	return st, nil
}
