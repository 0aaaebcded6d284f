package host

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Prefix is the file name prefix of provider plugins: plugin NAME is the
// executable agora-provider-NAME.
const Prefix = "agora-provider-"

// SearchPath is where plugins are looked for, in order: the directories
// of $AGORA_PLUGIN_PATH (separated like $PATH), .agora/plugins beside the
// spec, then ~/.agora/plugins.
func SearchPath(specDir string) []string {
	var dirs []string
	for _, d := range filepath.SplitList(os.Getenv("AGORA_PLUGIN_PATH")) {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	if specDir != "" {
		if abs, err := filepath.Abs(specDir); err == nil {
			specDir = abs
		}
		dirs = append(dirs, filepath.Join(specDir, ".agora", "plugins"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".agora", "plugins"))
	}
	// A directory named twice (the spec beside $HOME's .agora, say) is
	// searched once: its plugins would shadow themselves.
	seen := map[string]bool{}
	out := dirs[:0]
	for _, d := range dirs {
		if c := filepath.Clean(d); !seen[c] {
			seen[c] = true
			out = append(out, d)
		}
	}
	return out
}

// NotFoundError says that a plugin is in none of the directories searched.
type NotFoundError struct {
	Name string
	Dirs []string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("plugin %s not found: no executable %s%s in %s (set $AGORA_PLUGIN_PATH or copy the binary to one of them)",
		e.Name, Prefix, e.Name, strings.Join(e.Dirs, ", "))
}

// Find returns the path of plugin name's executable: the first
// agora-provider-NAME in dirs that is a regular executable file.
func Find(name string, dirs []string) (string, error) {
	for _, d := range dirs {
		p := filepath.Join(d, Prefix+name)
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", &NotFoundError{Name: name, Dirs: dirs}
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// Found is a plugin executable found on the search path.
type Found struct {
	Name, Path string
	// Shadowed is set when a directory earlier on the path has a plugin
	// of the same name: agora runs that one, not this.
	Shadowed bool
}

// List returns every agora-provider-* executable in dirs, in search
// order, by name within a directory.
func List(dirs []string) []Found {
	var out []Found
	seen := map[string]bool{}
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		var names []string
		for _, e := range entries {
			n := e.Name()
			if strings.HasPrefix(n, Prefix) && len(n) > len(Prefix) && isExecutable(filepath.Join(d, n)) {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			name := strings.TrimPrefix(n, Prefix)
			out = append(out, Found{Name: name, Path: filepath.Join(d, n), Shadowed: seen[name]})
			seen[name] = true
		}
	}
	return out
}

// Checksum is the hex SHA-256 of a file.
func Checksum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
