package seeddata

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultEndpoint is the Hugging Face Hub.
const DefaultEndpoint = "https://huggingface.co"

// Retry policy for 5xx answers, 429s and network errors: attempts in all,
// and the first delay, doubled after each try. Tests shorten retryDelay.
var (
	retryAttempts = 4
	retryDelay    = 500 * time.Millisecond
	retryAfterCap = 30 * time.Second
)

var (
	shaRE  = regexp.MustCompile(`^[0-9a-f]{40}$`)
	repoRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$`)
)

// hub talks to one dataset repository on the Hub.
type hub struct {
	endpoint string
	token    string
	client   *http.Client
	id       string
}

// repoInfo is the part of the revision API's answer that is used.
type repoInfo struct {
	SHA      string    `json:"sha"`
	Siblings []sibling `json:"siblings"`
}

type sibling struct {
	RFilename string `json:"rfilename"`
	// LFS is present when the Hub was asked for blob details; its sha256
	// is then checked against the download.
	LFS *struct {
		SHA256 string `json:"sha256"`
	} `json:"lfs,omitempty"`
}

func loadHub(ctx context.Context, src Source, opts Options) (*Dataset, error) {
	id := src.HF
	if !repoRE.MatchString(id) || strings.Contains(id, "..") {
		return nil, fmt.Errorf("invalid hf dataset id %q: want OWNER/NAME", id)
	}
	rev := src.Revision
	if rev == "" {
		rev = "main"
	}
	split := src.Split
	if split == "" {
		split = "train"
	}
	cacheDir := opts.CacheDir
	if cacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("hf dataset %s: no cache directory: %w", id, err)
		}
		cacheDir = filepath.Join(base, "agora", "hf")
	}
	h := &hub{endpoint: opts.Endpoint, token: opts.Token, client: opts.HTTPClient, id: id}
	if h.endpoint == "" {
		h.endpoint = os.Getenv("HF_ENDPOINT")
	}
	if h.endpoint == "" {
		h.endpoint = DefaultEndpoint
	}
	h.endpoint = strings.TrimRight(h.endpoint, "/")
	if h.token == "" {
		h.token = os.Getenv("HF_TOKEN")
	}
	if h.client == nil {
		h.client = defaultClient
	}
	repoDir := filepath.Join(cacheDir, filepath.FromSlash(id))

	// A commit never changes: with its file list (kept from an earlier
	// load) and its files cached, a pinned load makes no request.
	var info *repoInfo
	if shaRE.MatchString(rev) {
		if cached, err := readManifest(repoDir, rev); err == nil {
			info = cached
		}
	}
	resolved := info == nil
	if resolved {
		var err error
		if info, err = h.resolve(ctx, rev); err != nil {
			return nil, err
		}
	}
	files, err := pickFiles(info, split)
	if err != nil {
		return nil, fmt.Errorf("hf dataset %s at %s: %w", id, short(info.SHA), err)
	}
	lfs := make(map[string]string)
	for _, s := range info.Siblings {
		if s.LFS != nil {
			lfs[s.RFilename] = s.LFS.SHA256
		}
	}
	for _, f := range files {
		dest := cachePath(repoDir, info.SHA, f)
		if st, err := os.Stat(dest); err == nil && st.Mode().IsRegular() {
			continue
		}
		if err := h.download(ctx, info.SHA, f, dest, lfs[f]); err != nil {
			return nil, err
		}
	}
	if resolved {
		if err := writeManifest(repoDir, info); err != nil {
			return nil, fmt.Errorf("hf dataset %s: cache: %w", id, err)
		}
	}
	return readHubFiles(ctx, id, info.SHA, repoDir, files)
}

var defaultClient = &http.Client{Transport: func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = time.Minute
	return t
}()}

// readHubFiles decodes the cached files of a commit.
func readHubFiles(ctx context.Context, id, sha, repoDir string, files []string) (*Dataset, error) {
	var recs []record
	var all [][]byte
	for _, f := range files {
		data, err := os.ReadFile(cachePath(repoDir, sha, f))
		if err != nil {
			return nil, fmt.Errorf("hf dataset %s: read cached file: %w", id, err)
		}
		format, err := formatOf(f)
		if err != nil {
			return nil, err
		}
		got, err := decode(ctx, fmt.Sprintf("%s (hf dataset %s at %s)", f, id, short(sha)), format, data)
		if err != nil {
			return nil, err
		}
		recs = append(recs, got...)
		all = append(all, data)
	}
	return &Dataset{
		Items:    assignIDs(recs),
		Digest:   digest(all...),
		Revision: sha,
		Files:    files,
	}, nil
}

func cachePath(repoDir, sha, file string) string {
	return filepath.Join(repoDir, sha, filepath.FromSlash(file))
}

// The manifest keeps a commit's file list beside its cached files
// (CacheDir/{id}/{sha}.json) so that a pinned load needs no request.
func manifestPath(repoDir, sha string) string {
	return filepath.Join(repoDir, sha+".json")
}

func readManifest(repoDir, sha string) (*repoInfo, error) {
	b, err := os.ReadFile(manifestPath(repoDir, sha))
	if err != nil {
		return nil, err
	}
	var info repoInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, err
	}
	if info.SHA != sha {
		return nil, errors.New("manifest is for another commit")
	}
	return &info, nil
}

func writeManifest(repoDir string, info *repoInfo) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(repoDir, 0o755); err != nil {
		return err
	}
	return writeAtomic(manifestPath(repoDir, info.SHA), func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// writeAtomic writes a file through a temporary file in the same
// directory, renamed into place once complete and synced.
func writeAtomic(dest string, fill func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".part-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = fill(tmp); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}

// resolve asks the Hub which commit rev is and which files it holds.
func (h *hub) resolve(ctx context.Context, rev string) (*repoInfo, error) {
	u := h.endpoint + "/api/datasets/" + escapePath(h.id) + "/revision/" + url.PathEscape(rev)
	var info repoInfo
	err := h.fetch(ctx, u, func(resp *http.Response) (bool, error) {
		if resp.StatusCode != http.StatusOK {
			return retryable(resp.StatusCode), h.statusError(resp, rev, "")
		}
		if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
			return true, fmt.Errorf("hf dataset %s: bad answer from %s: %w", h.id, h.endpoint, err)
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	info.SHA = strings.ToLower(info.SHA)
	if !shaRE.MatchString(info.SHA) {
		return nil, fmt.Errorf("hf dataset %s: the hub resolved revision %q to %q, not a commit sha", h.id, rev, info.SHA)
	}
	for _, s := range info.Siblings {
		if !fs.ValidPath(s.RFilename) || strings.Contains(s.RFilename, `\`) {
			return nil, fmt.Errorf("hf dataset %s: the hub listed an unsafe file name %q", h.id, s.RFilename)
		}
	}
	return &info, nil
}

// download fetches one file of a commit into dest atomically, checking it
// against its LFS sha256 when the Hub gave one.
func (h *hub) download(ctx context.Context, sha, file, dest, wantSHA256 string) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("hf dataset %s: cache: %w", h.id, err)
	}
	u := h.endpoint + "/datasets/" + escapePath(h.id) + "/resolve/" + sha + "/" + escapePath(file)
	return h.fetch(ctx, u, func(resp *http.Response) (bool, error) {
		if resp.StatusCode != http.StatusOK {
			return retryable(resp.StatusCode), h.statusError(resp, sha, file)
		}
		var sum string
		err := writeAtomic(dest, func(w io.Writer) error {
			hash := sha256.New()
			if _, err := io.Copy(io.MultiWriter(w, hash), resp.Body); err != nil {
				return err
			}
			sum = hex.EncodeToString(hash.Sum(nil))
			if wantSHA256 != "" && !strings.EqualFold(sum, wantSHA256) {
				return fmt.Errorf("sha256 %s, want %s", sum, wantSHA256)
			}
			return nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			return true, fmt.Errorf("hf dataset %s: download %s: %w", h.id, file, err)
		}
		return false, nil
	})
}

// fetch GETs u and hands the answer to handle, retrying (with backoff)
// network errors and the answers handle calls retryable.
func (h *hub) fetch(ctx context.Context, u string, handle func(*http.Response) (retry bool, err error)) error {
	delay := retryDelay
	for attempt := 1; ; attempt++ {
		wait, err := h.try(ctx, u, handle)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case wait < 0:
			return err
		case attempt >= retryAttempts:
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		if wait == 0 {
			wait = delay
			delay *= 2
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// try makes one request. wait is negative when the error is final, zero
// for the usual backoff, and positive when the server asked for a delay.
func (h *hub) try(ctx context.Context, u string, handle func(*http.Response) (bool, error)) (wait time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return -1, fmt.Errorf("hf dataset %s: %w", h.id, err)
	}
	req.Header.Set("User-Agent", "agora-seeddata")
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("hf dataset %s: cannot reach the hub at %s: %w", h.id, h.endpoint, h.scrubErr(err))
	}
	defer func() {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	retry, err := handle(resp)
	if err == nil {
		return 0, nil
	}
	if !retry {
		return -1, err
	}
	return retryAfter(resp), err
}

func retryable(status int) bool {
	return status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout
}

// retryAfter is the delay a 429 or 503 asks for in Retry-After seconds,
// capped; zero when it asks for none.
func retryAfter(resp *http.Response) time.Duration {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return 0
	}
	secs, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After")))
	if err != nil || secs <= 0 {
		return 0
	}
	return min(time.Duration(secs)*time.Second, retryAfterCap)
}

// statusError explains a non-200 answer. file is empty for the revision
// lookup.
func (h *hub) statusError(resp *http.Response, rev, file string) error {
	code := resp.StatusCode
	switch {
	case code == http.StatusUnauthorized && h.token == "":
		return fmt.Errorf("hf dataset %s: the hub requires authentication (401): the dataset is private, gated or does not exist; set HF_TOKEN to a token with access", h.id)
	case code == http.StatusUnauthorized:
		return fmt.Errorf("hf dataset %s: the hub rejected the token in HF_TOKEN (401): check that it is valid and has access to the dataset", h.id)
	case code == http.StatusForbidden:
		return fmt.Errorf("hf dataset %s: access denied (403): the dataset is gated or private; accept its terms on the hub and set HF_TOKEN to a token with access", h.id)
	case code == http.StatusNotFound && file != "":
		return fmt.Errorf("hf dataset %s: file %s not found at %s (404)", h.id, file, short(rev))
	case code == http.StatusNotFound:
		switch resp.Header.Get("X-Error-Code") {
		case "RevisionNotFound":
			return fmt.Errorf("hf dataset %s: revision %q not found (404)", h.id, rev)
		case "RepoNotFound":
			return fmt.Errorf("hf dataset %s: dataset not found (404)", h.id)
		}
		return fmt.Errorf("hf dataset %s: dataset or revision %q not found (404)", h.id, rev)
	}
	what := "revision " + strconv.Quote(rev)
	if file != "" {
		what = "file " + file
	}
	msg := ""
	if b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10)); len(b) > 0 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		} else if !strings.Contains(resp.Header.Get("Content-Type"), "html") {
			msg = string(b)
		}
		msg = strings.Join(strings.Fields(h.scrub(msg)), " ")
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		if msg != "" {
			msg = ": " + msg
		}
	}
	return fmt.Errorf("hf dataset %s: the hub answered %s for %s%s", h.id, resp.Status, what, msg)
}

// scrub removes the token from text that may reach an error.
func (h *hub) scrub(s string) string {
	if h.token == "" {
		return s
	}
	return strings.ReplaceAll(s, h.token, "[HF_TOKEN]")
}

func (h *hub) scrubErr(err error) error {
	if h.token == "" || !strings.Contains(err.Error(), h.token) {
		return err
	}
	return errors.New(h.scrub(err.Error()))
}

// escapePath escapes each segment of a slash-separated path.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

func short(sha string) string {
	if shaRE.MatchString(sha) {
		return sha[:12]
	}
	return sha
}

// Data file extensions, most preferred first: when one rule matches files
// of several formats (train.parquet beside train.jsonl), the first wins.
var dataExts = []string{".parquet", ".jsonl", ".json"}

func isData(name string) bool {
	return slices.Contains(dataExts, strings.ToLower(path.Ext(name)))
}

// pickFiles chooses a split's data files among a commit's files. The rules
// are tried in order and the first that matches wins:
//
//	data/{split}.ext, data/{split}-*.ext, data/{split}/*.ext   (push_to_hub)
//	{split}.ext, {split}-*.ext                                 (top level)
//	{split}/*.ext                                              (also CONFIG/SPLIT)
//	{config}/{split}/*.ext                                     (one config only)
//	…/*-{split}-*.ext, …/*_{split}.ext and the like            (name tokens)
//
// Matches are sorted by name.
func pickFiles(info *repoInfo, split string) ([]string, error) {
	if split == "" || strings.Contains(split, "..") || strings.ContainsAny(split, `*?[\`) {
		return nil, fmt.Errorf("invalid split %q", split)
	}
	var data []string
	for _, s := range info.Siblings {
		if isData(s.RFilename) {
			data = append(data, s.RFilename)
		}
	}
	slices.Sort(data)
	stem := func(f string) string {
		base := path.Base(f)
		return base[:len(base)-len(path.Ext(base))]
	}
	token := regexp.MustCompile(`(^|[-_.])` + regexp.QuoteMeta(split) + `($|[-_.])`)
	rules := []func(f string) bool{
		func(f string) bool {
			dir := path.Dir(f)
			s := stem(f)
			return dir == "data" && (s == split || strings.HasPrefix(s, split+"-")) || dir == "data/"+split
		},
		func(f string) bool {
			s := stem(f)
			return path.Dir(f) == "." && (s == split || strings.HasPrefix(s, split+"-"))
		},
		func(f string) bool { return path.Dir(f) == split },
		func(f string) bool {
			parts := strings.Split(f, "/")
			return len(parts) == 3 && parts[1] == split
		},
		func(f string) bool { return token.MatchString(stem(f)) },
	}
	for i, rule := range rules {
		var hits []string
		for _, f := range data {
			if rule(f) {
				hits = append(hits, f)
			}
		}
		if len(hits) == 0 {
			continue
		}
		if i == 3 { // {config}/{split}/*: one config, or the default one
			configs := map[string]bool{}
			for _, f := range hits {
				configs[strings.Split(f, "/")[0]] = true
			}
			if len(configs) > 1 {
				if !configs["default"] {
					names := slices.Sorted(maps.Keys(configs))
					return nil, fmt.Errorf("split %q exists in several configs (%s): set split to CONFIG/%s", split, strings.Join(names, ", "), split)
				}
				hits = slices.DeleteFunc(hits, func(f string) bool { return !strings.HasPrefix(f, "default/") })
			}
		}
		for _, ext := range dataExts {
			var same []string
			for _, f := range hits {
				if strings.ToLower(path.Ext(f)) == ext {
					same = append(same, f)
				}
			}
			if len(same) > 0 {
				return same, nil
			}
		}
	}
	if len(data) == 0 {
		var all []string
		for _, s := range info.Siblings {
			all = append(all, s.RFilename)
		}
		return nil, fmt.Errorf("no .parquet, .jsonl or .json data files; the files are: %s", listSome(all))
	}
	splits := map[string]bool{}
	for _, f := range data {
		splits[splitOf(f)] = true
	}
	return nil, fmt.Errorf("no data files for split %q; splits found: %s; data files: %s",
		split, strings.Join(slices.Sorted(maps.Keys(splits)), ", "), listSome(data))
}

// splitOf guesses which split a data file belongs to, for error
// messages: a common split name among its path's tokens, else the name
// before the first separator at the top or in data/, else its directory.
func splitOf(f string) string {
	for _, tok := range strings.FieldsFunc(f, func(r rune) bool { return strings.ContainsRune("/-_.", r) }) {
		if commonSplits[tok] {
			return tok
		}
	}
	dir := path.Dir(f)
	base := path.Base(f)
	s := base[:len(base)-len(path.Ext(base))]
	if dir == "." || dir == "data" {
		if i := strings.IndexAny(s, "-_."); i > 0 {
			s = s[:i]
		}
		return s
	}
	return path.Base(dir)
}

var commonSplits = map[string]bool{"train": true, "test": true, "validation": true, "valid": true, "dev": true, "eval": true}

func listSome(names []string) string {
	const most = 10
	if len(names) == 0 {
		return "none"
	}
	if len(names) <= most {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:most], ", "), len(names)-most)
}
