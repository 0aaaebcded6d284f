// Package seeddata loads a setting's seed items: the instructions (and,
// where the method needs them, responses) that generation starts from.
//
// A source is either a local file (JSONL, JSON or Parquet) or a dataset on
// the Hugging Face Hub at a revision. Hub revisions are resolved to a
// commit, the split's data files are downloaded once into a local cache
// keyed by that commit, and a load whose revision is already a commit sha
// with its files cached makes no request at all. Every load reports a
// digest over the bytes it read, so a run can record exactly which data it
// started from and notice when that changes.
//
// Records are read by field name: AgoraBench's instruction/response first,
// then chat messages, then the common pairs prompt/completion,
// question/answer, problem/solution, query/response and input/output.
package seeddata

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Item is one seed record.
type Item struct {
	// ID is the record's idx or id field, or its position in the dataset
	// ("0", "1", …) when it has none or when those fields are not unique.
	ID          string
	Instruction string
	// Response is empty when the record has none (response generation
	// needs only instructions).
	Response string
}

// Source names the seed data; it mirrors spec.SeedData. Exactly one of HF
// and Path is set.
type Source struct {
	// HF is a Hub dataset id, e.g. "Data-Agora/math-seed-data".
	HF string
	// Revision is a branch, tag or commit sha; "main" when empty.
	Revision string
	// Split is the split to read; "train" when empty. "CONFIG/SPLIT"
	// selects a split inside a config directory.
	Split string
	// Path is a local .jsonl, .json or .parquet file; a relative path is
	// resolved against Options.Dir.
	Path string
}

// Options configure Load. The zero value works.
type Options struct {
	// Dir is the spec's directory, against which a relative Path resolves.
	Dir string
	// CacheDir holds downloaded Hub files as CacheDir/{id}/{sha}/{file};
	// os.UserCacheDir()/agora/hf when empty.
	CacheDir string
	// Endpoint is the Hub's base URL; $HF_ENDPOINT or
	// https://huggingface.co when empty.
	Endpoint string
	// Token is sent as "Authorization: Bearer …"; $HF_TOKEN when empty. It
	// never appears in an error.
	Token string
	// HTTPClient makes the Hub requests; a client with a response-header
	// timeout when nil.
	HTTPClient *http.Client
}

// Dataset is the loaded seed data.
type Dataset struct {
	Items []Item
	// Digest is "sha256:" and the hex SHA-256 of the files' bytes,
	// concatenated in the order of Files. For a local file it equals the
	// file's own digest (spec.SeedData.Digest).
	Digest string
	// Revision is the commit sha a Hub revision resolved to; empty for a
	// local file.
	Revision string
	// Files are the files read: the resolved local path, or the paths
	// inside the Hub repository, in the order they were read.
	Files []string
}

// Load reads the seed items that src names.
func Load(ctx context.Context, src Source, opts Options) (*Dataset, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch {
	case src.HF != "" && src.Path != "":
		return nil, errors.New("seed data names both hf and path: choose one")
	case src.Path != "":
		return loadLocal(ctx, src, opts)
	case src.HF != "":
		return loadHub(ctx, src, opts)
	default:
		return nil, errors.New("seed data names neither hf nor path")
	}
}

func loadLocal(ctx context.Context, src Source, opts Options) (*Dataset, error) {
	full := src.Path
	if !filepath.IsAbs(full) {
		full = filepath.Join(opts.Dir, full)
	}
	format, err := formatOf(full)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(full)
	if err != nil {
		return nil, fmt.Errorf("read seed file: %w", err)
	}
	recs, err := decode(ctx, full, format, data)
	if err != nil {
		return nil, err
	}
	return &Dataset{
		Items:  assignIDs(recs),
		Digest: digest(data),
		Files:  []string{full},
	}, nil
}

// format is a data file's encoding.
type format int

const (
	formatJSONL format = iota
	formatJSON
	formatParquet
)

// formatOf tells a data file's format from its extension.
func formatOf(name string) (format, error) {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jsonl", ".ndjson":
		return formatJSONL, nil
	case ".json":
		return formatJSON, nil
	case ".parquet":
		return formatParquet, nil
	}
	return 0, fmt.Errorf("seed file %s: unsupported format: use .jsonl, .json or .parquet", name)
}

// digest is the "sha256:…" digest of the concatenated parts.
func digest(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// assignIDs turns decoded records into items. A record keeps its own id
// when every record has one and they are all distinct; otherwise every
// record is numbered by position, so that IDs are always unique keys.
func assignIDs(recs []record) []Item {
	items := make([]Item, len(recs))
	seen := make(map[string]bool, len(recs))
	own := true
	for _, r := range recs {
		if r.id == "" || seen[r.id] {
			own = false
			break
		}
		seen[r.id] = true
	}
	for i, r := range recs {
		id := r.id
		if !own {
			id = strconv.Itoa(i)
		}
		items[i] = Item{ID: id, Instruction: r.instruction, Response: r.response}
	}
	return items
}
