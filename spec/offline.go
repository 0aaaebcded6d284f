package spec

import "path/filepath"

// Offline is the spec's offline block: the compute nodes have no internet
// and read the hub's artefacts from CacheDir (docs/offline.md).
type Offline struct {
	// CacheDir is absolute after Load (a relative one resolves against
	// the spec's directory).
	CacheDir string `json:"cache_dir"`
}

// completeOffline makes the cache directory absolute.
func (l *loader) completeOffline(exp *Experiment) {
	o := exp.Offline
	if o == nil {
		return
	}
	if !filepath.IsAbs(o.CacheDir) {
		o.CacheDir = filepath.Join(l.dir, o.CacheDir)
	}
	if abs, err := filepath.Abs(o.CacheDir); err == nil {
		o.CacheDir = abs
	}
}
