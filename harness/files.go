package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// maxResultBytes bounds the size of a result file read into memory.
// evalplus's eval_results.json holds every sample with its failing inputs
// and runs to tens of megabytes; nothing legitimate comes near this.
const maxResultBytes = 1 << 30

// candidate is a result file found under an output directory.
type candidate struct {
	path string
	// when orders candidates, newest first.
	when time.Time
}

// findFiles lists the regular files under dir, down to depth levels of
// subdirectories, whose base name match accepts; stamp gives a file's time
// (the zero time: use its modification time). Newest first.
func findFiles(dir string, depth int, match func(name string) bool, stamp func(name string) time.Time) ([]candidate, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("result directory %s: %w", dir, err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("result directory %s is not a directory", dir)
	}
	var out []candidate
	var walk func(d string, level int) error
	walk = func(d string, level int) error {
		entries, err := os.ReadDir(d)
		if err != nil {
			return fmt.Errorf("reading %s: %w", d, err)
		}
		for _, e := range entries {
			p := filepath.Join(d, e.Name())
			if e.IsDir() {
				if level < depth {
					if err := walk(p, level+1); err != nil {
						return err
					}
				}
				continue
			}
			if !e.Type().IsRegular() || !match(e.Name()) {
				continue
			}
			c := candidate{path: p}
			if stamp != nil {
				c.when = stamp(e.Name())
			}
			if c.when.IsZero() {
				fi, err := e.Info()
				if err != nil {
					continue // removed while listing
				}
				c.when = fi.ModTime()
			}
			out = append(out, c)
		}
		return nil
	}
	if err := walk(dir, 0); err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].when.Equal(out[j].when) {
			return out[i].when.After(out[j].when)
		}
		return out[i].path > out[j].path
	})
	return out, nil
}

// readFile reads a result file, refusing one too large to be a result.
func readFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxResultBytes {
		return nil, fmt.Errorf("%s: %d bytes, too large for a result file", path, fi.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// decodePythonJSON decodes JSON written by Python's json module, which
// writes float nan and ±inf as the bare words NaN, Infinity and -Infinity
// (not JSON): they are decoded as null.
func decodePythonJSON(data []byte, v any) error {
	return json.Unmarshal(sanitizePythonJSON(data), v)
}

// sanitizePythonJSON replaces NaN, Infinity and -Infinity outside strings
// by null. Other bytes are left as they are, for the JSON decoder to judge.
func sanitizePythonJSON(data []byte) []byte {
	if !bytes.Contains(data, []byte("NaN")) && !bytes.Contains(data, []byte("Infinity")) {
		return data
	}
	out := make([]byte, 0, len(data))
	inString, escaped := false, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch {
		case c == '"':
			inString = true
		case bytes.HasPrefix(data[i:], []byte("NaN")):
			out = append(out, "null"...)
			i += len("NaN") - 1
			continue
		case bytes.HasPrefix(data[i:], []byte("Infinity")):
			out = append(out, "null"...)
			i += len("Infinity") - 1
			continue
		case bytes.HasPrefix(data[i:], []byte("-Infinity")):
			out = append(out, "null"...)
			i += len("-Infinity") - 1
			continue
		}
		out = append(out, c)
	}
	return out
}

// number reads a JSON value as a float64: ok is false for anything that is
// not a JSON number (a string such as lm-eval's "N/A", null, an object).
func number(raw json.RawMessage) (float64, bool) {
	var f float64
	if len(raw) == 0 || raw[0] == 'n' {
		return 0, false
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, false
	}
	return f, true
}
