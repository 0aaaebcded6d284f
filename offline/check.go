package offline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Missing returns the artefacts of as that the cache at dir lacks, in
// as's order. A Model given as a directory is looked for relative to
// specDir when it is not absolute.
func Missing(dir, specDir string, as []Artefact) []Artefact {
	var out []Artefact
	for _, a := range as {
		if !Present(dir, specDir, a) {
			out = append(out, a)
		}
	}
	return out
}

// Present reports whether the cache at dir holds a in the layout its tool
// reads offline.
func Present(dir, specDir string, a Artefact) bool {
	switch a.Kind {
	case Model, Repo:
		if a.Local() {
			p := a.ID
			if !filepath.IsAbs(p) {
				p = filepath.Join(specDir, p)
			}
			return exists(filepath.Join(p, "config.json"))
		}
		snap, err := snapshot(dir, a.Kind, a.ID)
		if err != nil {
			return false
		}
		if a.Kind == Model {
			return exists(filepath.Join(snap, "config.json"))
		}
		if len(a.Files) > 0 {
			for _, f := range a.Files {
				if !exists(filepath.Join(snap, filepath.FromSlash(f))) {
					return false
				}
			}
			return true
		}
		ents, err := os.ReadDir(snap)
		return err == nil && len(ents) > 0
	case Dataset:
		config := a.Config
		if config == "" {
			config = "default"
		}
		// CONFIG/VERSION/HASH, as datasets prepares it.
		ms, _ := filepath.Glob(filepath.Join(datasetDir(dir, a.ID), config, "*", "*"))
		for _, m := range ms {
			if st, err := os.Stat(m); err == nil && st.IsDir() {
				return true
			}
		}
		return false
	case File:
		st, err := os.Stat(filepath.Join(dir, filesDir, a.ID))
		return err == nil && st.Mode().IsRegular() && st.Size() > 0
	}
	return false
}

// snapshot is the directory of the commit refs/main names in a hub
// repository's cache.
func snapshot(dir, kind, id string) (string, error) {
	repo := repoDir(dir, kind, id)
	b, err := os.ReadFile(filepath.Join(repo, "refs", "main"))
	if err != nil {
		return "", err
	}
	sha := strings.TrimSpace(string(b))
	if !shaRE.MatchString(sha) {
		return "", fmt.Errorf("%s: refs/main holds %q, not a commit", repo, sha)
	}
	return filepath.Join(repo, "snapshots", sha), nil
}

// MissingError is apply's refusal: artefacts a step needs are not in the
// cache.
type MissingError struct {
	Dir, Spec string
	Missing   []Artefact
}

func (e *MissingError) Error() string {
	var b strings.Builder
	n := len(e.Missing)
	fmt.Fprintf(&b, "offline: %d %s the plan's jobs read %s not in the cache %s (offline.cache_dir), and the compute nodes cannot download %s:",
		n, plural(n, "artefact", "artefacts"), plural(n, "is", "are"), e.Dir, plural(n, "it", "them"))
	local := false
	for _, a := range e.Missing {
		if a.Local() {
			local = true
			fmt.Fprintf(&b, "\n  directory %s (%s): no config.json there", a.ID, strings.Join(a.For, ", "))
			continue
		}
		fmt.Fprintf(&b, "\n  %s (%s)", a, strings.Join(a.For, ", "))
	}
	fmt.Fprintf(&b, "\nstage them with \"agora stage %s\" on a machine that reaches the hub (a login node), then apply again", e.Spec)
	if local {
		b.WriteString("; a model given as a directory is not staged: put it on storage the nodes share")
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
