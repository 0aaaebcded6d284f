package seeddata

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRepo is a dataset on the stand-in hub.
type fakeRepo struct {
	refs  map[string]string            // branch or tag → sha
	files map[string]map[string][]byte // sha → path → bytes
	token string                       // when set, requests need it
	gated bool                         // 403 rather than 401 for a bad token
	lfs   map[string]string            // path → sha256 to advertise
}

// fakeHub serves the two endpoints the loader uses and counts requests.
type fakeHub struct {
	t     *testing.T
	repos map[string]*fakeRepo
	// fail answers the next n requests with status failCode.
	fail     int
	failCode int

	mu       sync.Mutex
	requests []string
	auth     []string
}

func (h *fakeHub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.requests)
}

func (h *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.requests = append(h.requests, r.URL.EscapedPath())
	h.auth = append(h.auth, r.Header.Get("Authorization"))
	fail := h.fail > 0
	if fail {
		h.fail--
	}
	h.mu.Unlock()
	if fail {
		http.Error(w, `{"error":"try again"}`, h.failCode)
		return
	}
	p := r.URL.EscapedPath()
	var id, rest string
	var api bool
	switch {
	case strings.HasPrefix(p, "/api/datasets/"):
		api = true
		id, rest, _ = strings.Cut(strings.TrimPrefix(p, "/api/datasets/"), "/revision/")
	case strings.HasPrefix(p, "/datasets/"):
		id, rest, _ = strings.Cut(strings.TrimPrefix(p, "/datasets/"), "/resolve/")
	default:
		http.NotFound(w, r)
		return
	}
	repo := h.repos[id]
	if repo == nil {
		w.Header().Set("X-Error-Code", "RepoNotFound")
		http.Error(w, `{"error":"Repository not found"}`, http.StatusNotFound)
		return
	}
	if repo.token != "" && r.Header.Get("Authorization") != "Bearer "+repo.token {
		code := http.StatusUnauthorized
		if repo.gated && r.Header.Get("Authorization") != "" {
			code = http.StatusForbidden
		}
		http.Error(w, `{"error":"Access to this dataset is restricted"}`, code)
		return
	}
	if api {
		rev, err := url.PathUnescape(rest)
		if err != nil {
			h.t.Errorf("bad revision %q", rest)
		}
		sha := repo.refs[rev]
		if sha == "" && repo.files[rev] != nil {
			sha = rev
		}
		if sha == "" {
			w.Header().Set("X-Error-Code", "RevisionNotFound")
			http.Error(w, `{"error":"Invalid rev id"}`, http.StatusNotFound)
			return
		}
		type lfs struct {
			SHA256 string `json:"sha256"`
		}
		type sib struct {
			RFilename string `json:"rfilename"`
			LFS       *lfs   `json:"lfs,omitempty"`
		}
		var sibs []sib
		for name := range repo.files[sha] {
			s := sib{RFilename: name}
			if sum, ok := repo.lfs[name]; ok {
				s.LFS = &lfs{SHA256: sum}
			}
			sibs = append(sibs, s)
		}
		slices.SortFunc(sibs, func(a, b sib) int { return strings.Compare(a.RFilename, b.RFilename) })
		json.NewEncoder(w).Encode(map[string]any{"id": id, "sha": sha, "siblings": sibs})
		return
	}
	sha, file, _ := strings.Cut(rest, "/")
	file, _ = url.PathUnescape(file)
	b, ok := repo.files[sha][file]
	if !ok {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.Error(w, "Entry not found", http.StatusNotFound)
		return
	}
	w.Write(b)
}

func newFakeHub(t *testing.T, repos map[string]*fakeRepo) (*fakeHub, *httptest.Server) {
	t.Helper()
	h := &fakeHub{t: t, repos: repos}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	old := retryDelay
	retryDelay = time.Millisecond
	t.Cleanup(func() { retryDelay = old })
	return h, srv
}

const (
	sha1 = "1111111111111111111111111111111111111111"
	sha2 = "2222222222222222222222222222222222222222"
)

func seedRepo(t *testing.T) *fakeRepo {
	p0 := parquetBytes(t, []agoraRow{{Config: "gsm8k", Instruction: "q0", Response: "r0", Idx: 0}, {Config: "gsm8k", Instruction: "q1", Response: "r1", Idx: 1}})
	p1 := parquetBytes(t, []agoraRow{{Config: "math", Instruction: "q2", Response: "r2", Idx: 2}})
	return &fakeRepo{
		refs: map[string]string{"main": sha1, "v2": sha2},
		files: map[string]map[string][]byte{
			sha1: {
				".gitattributes":                       []byte("*.parquet filter=lfs"),
				"README.md":                            []byte("# seed"),
				"data/train-00001-of-00002.parquet":    p1,
				"data/train-00000-of-00002.parquet":    p0,
				"data/test-00000-of-00001.parquet":     p1,
				"extra/validation.jsonl":               []byte(`{"instruction":"v"}` + "\n"),
				"with space/train-00000-of-1.parquet~": []byte("not data"),
			},
			sha2: {
				"train.jsonl": []byte(`{"instruction":"a","response":"b","idx":"x1"}` + "\n" + `{"messages":[{"role":"user","content":"c"},{"role":"assistant","content":"d"}],"idx":"x2"}` + "\n"),
			},
		},
	}
}

func TestHubDownloadAndCache(t *testing.T) {
	ctx := context.Background()
	hub, srv := newFakeHub(t, map[string]*fakeRepo{"Data-Agora/math-seed-data": seedRepo(t)})
	cache := t.TempDir()
	opts := Options{CacheDir: cache, Endpoint: srv.URL + "/"}
	t.Setenv("HF_TOKEN", "")

	// First load: resolve main, download both shards.
	ds, err := Load(ctx, Source{HF: "Data-Agora/math-seed-data", Revision: "main", Split: "train"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Revision != sha1 {
		t.Errorf("revision = %q, want %s", ds.Revision, sha1)
	}
	wantFiles := []string{"data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"}
	if !reflect.DeepEqual(ds.Files, wantFiles) {
		t.Errorf("files = %v", ds.Files)
	}
	wantItems := []Item{{ID: "0", Instruction: "q0", Response: "r0"}, {ID: "1", Instruction: "q1", Response: "r1"}, {ID: "2", Instruction: "q2", Response: "r2"}}
	if !reflect.DeepEqual(ds.Items, wantItems) {
		t.Errorf("items = %#v", ds.Items)
	}
	repo := hub.repos["Data-Agora/math-seed-data"]
	h := sha256.New()
	for _, f := range wantFiles {
		h.Write(repo.files[sha1][f])
	}
	if want := "sha256:" + hex.EncodeToString(h.Sum(nil)); ds.Digest != want {
		t.Errorf("digest = %s, want %s", ds.Digest, want)
	}
	if n := hub.count(); n != 3 {
		t.Errorf("first load made %d requests (%v), want 3", n, hub.requests)
	}
	if hub.requests[0] != "/api/datasets/Data-Agora/math-seed-data/revision/main" ||
		hub.requests[1] != "/datasets/Data-Agora/math-seed-data/resolve/"+sha1+"/data/train-00000-of-00002.parquet" {
		t.Errorf("requests = %v", hub.requests)
	}
	for _, f := range wantFiles {
		if _, err := os.Stat(filepath.Join(cache, "Data-Agora", "math-seed-data", sha1, filepath.FromSlash(f))); err != nil {
			t.Errorf("not cached: %v", err)
		}
	}
	partials, _ := filepath.Glob(filepath.Join(cache, "Data-Agora", "math-seed-data", sha1, "data", ".*"))
	if len(partials) > 0 {
		t.Errorf("temporary files left: %v", partials)
	}

	// Pinned to the commit: everything is cached, no request at all.
	before := hub.count()
	ds2, err := Load(ctx, Source{HF: "Data-Agora/math-seed-data", Revision: sha1}, opts) // split defaults to train
	if err != nil {
		t.Fatal(err)
	}
	if n := hub.count() - before; n != 0 {
		t.Errorf("pinned cached load made %d requests", n)
	}
	if ds2.Digest != ds.Digest || !reflect.DeepEqual(ds2.Items, ds.Items) || ds2.Revision != sha1 {
		t.Errorf("pinned load differs: %+v", ds2)
	}

	// A branch is resolved every time, but the files are not fetched again.
	before = hub.count()
	if _, err := Load(ctx, Source{HF: "Data-Agora/math-seed-data"}, opts); err != nil {
		t.Fatal(err)
	}
	if n := hub.count() - before; n != 1 {
		t.Errorf("branch load made %d requests, want 1 (the revision lookup)", n)
	}

	// Another split of the cached commit downloads only its file.
	before = hub.count()
	ds3, err := Load(ctx, Source{HF: "Data-Agora/math-seed-data", Revision: sha1, Split: "test"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := hub.count() - before; n != 1 || len(ds3.Items) != 1 {
		t.Errorf("test split: %d requests, %d items", n, len(ds3.Items))
	}

	// Another revision with a JSONL file.
	ds4, err := Load(ctx, Source{HF: "Data-Agora/math-seed-data", Revision: "v2"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	want4 := []Item{{ID: "x1", Instruction: "a", Response: "b"}, {ID: "x2", Instruction: "c", Response: "d"}}
	if ds4.Revision != sha2 || !reflect.DeepEqual(ds4.Items, want4) || !reflect.DeepEqual(ds4.Files, []string{"train.jsonl"}) {
		t.Errorf("v2 = %+v", ds4)
	}
	if ds4.Digest == ds.Digest {
		t.Errorf("different data, same digest")
	}
	for _, a := range hub.auth {
		if a != "" {
			t.Errorf("authorization sent without a token: %q", a)
		}
	}
}

func TestHubPinnedFirstLoad(t *testing.T) {
	// A sha revision with nothing cached is looked up and downloaded once.
	hub, srv := newFakeHub(t, map[string]*fakeRepo{"o/d": seedRepo(t)})
	opts := Options{CacheDir: t.TempDir(), Endpoint: srv.URL}
	ds, err := Load(context.Background(), Source{HF: "o/d", Revision: sha2}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Items) != 2 || hub.count() != 2 {
		t.Errorf("%d items, %d requests", len(ds.Items), hub.count())
	}
	if _, err := Load(context.Background(), Source{HF: "o/d", Revision: sha2}, opts); err != nil || hub.count() != 2 {
		t.Errorf("second load: %v, %d requests", err, hub.count())
	}
}

func TestHubEndpointFromEnv(t *testing.T) {
	hub, srv := newFakeHub(t, map[string]*fakeRepo{"o/d": seedRepo(t)})
	t.Setenv("HF_ENDPOINT", srv.URL)
	if _, err := Load(context.Background(), Source{HF: "o/d", Revision: "v2"}, Options{CacheDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if hub.count() != 2 {
		t.Errorf("%d requests", hub.count())
	}
}

func TestHubToken(t *testing.T) {
	const secret = "hf_SECRETsecretSECRET123"
	ctx := context.Background()
	repo := seedRepo(t)
	repo.token = secret
	gated := seedRepo(t)
	gated.token = secret
	gated.gated = true
	hub, srv := newFakeHub(t, map[string]*fakeRepo{"o/private": repo, "o/gated": gated})
	t.Setenv("HF_TOKEN", "")
	opts := func(tok string) Options {
		return Options{CacheDir: t.TempDir(), Endpoint: srv.URL, Token: tok}
	}

	_, err := Load(ctx, Source{HF: "o/private"}, opts(""))
	if err == nil || !strings.Contains(err.Error(), "(401)") || !strings.Contains(err.Error(), "set HF_TOKEN") {
		t.Errorf("no token: %v", err)
	}

	const wrong = "hf_WRONGwrongWRONG456"
	_, err = Load(ctx, Source{HF: "o/private"}, opts(wrong))
	if err == nil || !strings.Contains(err.Error(), "rejected the token in HF_TOKEN (401)") || strings.Contains(err.Error(), wrong) {
		t.Errorf("wrong token: %v", err)
	}
	_, err = Load(ctx, Source{HF: "o/gated"}, opts(wrong))
	if err == nil || !strings.Contains(err.Error(), "gated") || !strings.Contains(err.Error(), "(403)") || strings.Contains(err.Error(), wrong) {
		t.Errorf("gated: %v", err)
	}

	// The token from the environment is sent as a bearer token.
	t.Setenv("HF_TOKEN", secret)
	before := hub.count()
	ds, err := Load(ctx, Source{HF: "o/private"}, opts(""))
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Items) != 3 {
		t.Errorf("%d items", len(ds.Items))
	}
	for _, a := range hub.auth[before:] {
		if a != "Bearer "+secret {
			t.Errorf("authorization = %q", a)
		}
	}

	// Errors after authenticating do not carry the token either.
	_, err = Load(ctx, Source{HF: "o/private", Revision: "nope"}, opts(""))
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("err = %v", err)
	}
	_, err = Load(ctx, Source{HF: "o/private", Split: "nope"}, opts(""))
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("err = %v", err)
	}
}

func TestHubNotFound(t *testing.T) {
	ctx := context.Background()
	_, srv := newFakeHub(t, map[string]*fakeRepo{"o/d": seedRepo(t)})
	opts := Options{CacheDir: t.TempDir(), Endpoint: srv.URL}

	_, err := Load(ctx, Source{HF: "o/missing"}, opts)
	if err == nil || !strings.Contains(err.Error(), "hf dataset o/missing: dataset not found (404)") {
		t.Errorf("missing dataset: %v", err)
	}
	_, err = Load(ctx, Source{HF: "o/d", Revision: "v9"}, opts)
	if err == nil || !strings.Contains(err.Error(), `revision "v9" not found (404)`) {
		t.Errorf("missing revision: %v", err)
	}
	_, err = Load(ctx, Source{HF: "o/d", Revision: sha1, Split: "dev"}, opts)
	if err == nil || !strings.Contains(err.Error(), `no data files for split "dev"; splits found: test, train, validation`) ||
		!strings.Contains(err.Error(), "data/train-00000-of-00002.parquet") {
		t.Errorf("missing split: %v", err)
	}
	_, err = Load(ctx, Source{HF: "bad id!"}, opts)
	if err == nil || !strings.Contains(err.Error(), "invalid hf dataset id") {
		t.Errorf("bad id: %v", err)
	}
	_, err = Load(ctx, Source{HF: "../../etc"}, opts)
	if err == nil || !strings.Contains(err.Error(), "invalid hf dataset id") {
		t.Errorf("bad id: %v", err)
	}
}

func TestHubRetries(t *testing.T) {
	ctx := context.Background()
	hub, srv := newFakeHub(t, map[string]*fakeRepo{"o/d": seedRepo(t)})
	hub.fail, hub.failCode = 2, http.StatusBadGateway
	ds, err := Load(ctx, Source{HF: "o/d", Revision: "v2"}, Options{CacheDir: t.TempDir(), Endpoint: srv.URL})
	if err != nil {
		t.Fatalf("after two 502s: %v", err)
	}
	if len(ds.Items) != 2 || hub.count() != 4 {
		t.Errorf("%d items, %d requests", len(ds.Items), hub.count())
	}

	hub.fail, hub.failCode = 100, http.StatusInternalServerError
	before := hub.count()
	_, err = Load(ctx, Source{HF: "o/d", Revision: "v2"}, Options{CacheDir: t.TempDir(), Endpoint: srv.URL})
	if err == nil || !strings.Contains(err.Error(), "500 Internal Server Error") || !strings.Contains(err.Error(), "try again") ||
		!strings.Contains(err.Error(), "gave up after 4 attempts") {
		t.Errorf("err = %v", err)
	}
	if n := hub.count() - before; n != retryAttempts {
		t.Errorf("%d attempts", n)
	}

	// A 4xx is not retried.
	hub.fail, hub.failCode = 0, 0
	before = hub.count()
	if _, err := Load(ctx, Source{HF: "o/nope"}, Options{CacheDir: t.TempDir(), Endpoint: srv.URL}); err == nil || hub.count()-before != 1 {
		t.Errorf("404: %v after %d requests", err, hub.count()-before)
	}
}

func TestHubUnreachable(t *testing.T) {
	_, srv := newFakeHub(t, nil)
	url := srv.URL
	srv.Close()
	_, err := Load(context.Background(), Source{HF: "o/d"}, Options{CacheDir: t.TempDir(), Endpoint: url, Token: "hf_tok_NEVER"})
	if err == nil || !strings.Contains(err.Error(), "cannot reach the hub at "+url) || strings.Contains(err.Error(), "hf_tok_NEVER") {
		t.Errorf("err = %v", err)
	}
}

func TestHubCanceled(t *testing.T) {
	hub, srv := newFakeHub(t, map[string]*fakeRepo{"o/d": seedRepo(t)})
	hub.fail, hub.failCode = 100, http.StatusServiceUnavailable
	retryDelay = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := Load(ctx, Source{HF: "o/d"}, Options{CacheDir: t.TempDir(), Endpoint: srv.URL})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
}

func TestHubChecksum(t *testing.T) {
	repo := seedRepo(t)
	repo.lfs = map[string]string{"train.jsonl": strings.Repeat("0", 64)}
	_, srv := newFakeHub(t, map[string]*fakeRepo{"o/d": repo})
	cache := t.TempDir()
	_, err := Load(context.Background(), Source{HF: "o/d", Revision: "v2"}, Options{CacheDir: cache, Endpoint: srv.URL})
	if err == nil || !strings.Contains(err.Error(), "download train.jsonl: sha256") {
		t.Errorf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(cache, "o", "d", sha2, "train.jsonl")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a bad download was cached: %v", err)
	}
	sum := sha256.Sum256(repo.files[sha2]["train.jsonl"])
	repo.lfs["train.jsonl"] = hex.EncodeToString(sum[:])
	if _, err := Load(context.Background(), Source{HF: "o/d", Revision: "v2"}, Options{CacheDir: cache, Endpoint: srv.URL}); err != nil {
		t.Error(err)
	}
}

func TestPickFiles(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		split string
		want  []string
		err   string
	}{
		{"push_to_hub", []string{"README.md", "data/train-00001-of-00002-abc.parquet", "data/train-00000-of-00002-def.parquet", "data/test-00000-of-00001.parquet"}, "train",
			[]string{"data/train-00000-of-00002-def.parquet", "data/train-00001-of-00002-abc.parquet"}, ""},
		{"data dir split", []string{"data/train.jsonl", "data/test.jsonl"}, "test", []string{"data/test.jsonl"}, ""},
		{"top level", []string{"train.jsonl", "test.jsonl", "training.jsonl"}, "train", []string{"train.jsonl"}, ""},
		{"parquet preferred", []string{"train.jsonl", "train.parquet"}, "train", []string{"train.parquet"}, ""},
		{"split dir", []string{"train/0001.parquet", "train/0000.parquet", "test/0000.parquet"}, "train", []string{"train/0000.parquet", "train/0001.parquet"}, ""},
		{"config dir", []string{"default/train/0000.parquet", "default/test/0000.parquet"}, "train", []string{"default/train/0000.parquet"}, ""},
		{"config dirs default", []string{"default/train/0000.parquet", "extra/train/0000.parquet"}, "train", []string{"default/train/0000.parquet"}, ""},
		{"config dirs ambiguous", []string{"a/train/0000.parquet", "b/train/0000.parquet"}, "train", nil, `split "train" exists in several configs (a, b): set split to CONFIG/train`},
		{"config split", []string{"a/train/0000.parquet", "b/train/0000.parquet"}, "b/train", []string{"b/train/0000.parquet"}, ""},
		{"name tokens", []string{"gsm8k-train-00000.parquet", "gsm8k-test-00000.parquet", "pretrain-x.parquet"}, "train", []string{"gsm8k-train-00000.parquet"}, ""},
		{"name token suffix", []string{"raw/math_train.jsonl", "raw/math_test.jsonl"}, "test", []string{"raw/math_test.jsonl"}, ""},
		{"no data", []string{"README.md", "x.csv"}, "train", nil, "no .parquet, .jsonl or .json data files; the files are: README.md, x.csv"},
		{"no split", []string{"data/train-0.parquet", "data/validation-0.parquet"}, "test", nil, `no data files for split "test"; splits found: train, validation`},
		{"glob split", []string{"train.jsonl"}, "*", nil, "invalid split"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := &repoInfo{SHA: sha1}
			for _, f := range tt.files {
				info.Siblings = append(info.Siblings, sibling{RFilename: f})
			}
			got, err := pickFiles(info, tt.split)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
