// Package offlinetest is a stand-in Hugging Face Hub for tests of staging:
// it serves directories as model and data set repositories through the two
// routes agora's stager uses (the revision API and resolve), and plain
// files at other paths, and counts the requests.
package offlinetest

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// Hub is the stand-in.
type Hub struct {
	srv   *httptest.Server
	token string

	mu       sync.Mutex
	repos    map[string]string // "models/ID" or "datasets/ID" → directory
	files    map[string][]byte // URL path → body
	requests []string
}

// NewHub starts a stand-in hub; with token non-empty it answers 401 to a
// request without that bearer token. Close stops it.
func NewHub(token string) *Hub {
	h := &Hub{token: token, repos: map[string]string{}, files: map[string][]byte{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	return h
}

// Close stops the hub.
func (h *Hub) Close() { h.srv.Close() }

// URL is the hub's base URL (HF_ENDPOINT).
func (h *Hub) URL() string { return h.srv.URL }

// AddModel serves dir as model repository id.
func (h *Hub) AddModel(id, dir string) { h.add("models/"+id, dir) }

// AddDataset serves dir as data set repository id.
func (h *Hub) AddDataset(id, dir string) { h.add("datasets/"+id, dir) }

// AddFile serves body at path (e.g. /release/x.jsonl.gz).
func (h *Hub) AddFile(path string, body []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.files[path] = body
}

func (h *Hub) add(key, dir string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.repos[key] = dir
}

// Requests returns the paths requested so far.
func (h *Hub) Requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.requests...)
}

// Commit is the commit the stand-in gives repository key: a digest of its
// name.
func Commit(key string) string {
	sum := sha1.Sum([]byte(key))
	return hex.EncodeToString(sum[:])
}

func (h *Hub) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.requests = append(h.requests, r.URL.Path)
	h.mu.Unlock()
	if h.token != "" && r.Header.Get("Authorization") != "Bearer "+h.token {
		http.Error(w, `{"error":"Invalid credentials"}`, http.StatusUnauthorized)
		return
	}
	p := r.URL.Path
	h.mu.Lock()
	body, isFile := h.files[p]
	h.mu.Unlock()
	if isFile {
		w.Write(body)
		return
	}
	// /api/{models,datasets}/OWNER/NAME/revision/main
	if rest, ok := strings.CutPrefix(p, "/api/"); ok {
		kind, rest, _ := strings.Cut(rest, "/")
		id, rev, ok := strings.Cut(rest, "/revision/")
		key := kind + "/" + id
		dir, known := h.repo(key)
		if !ok || !known || rev != "main" {
			http.Error(w, `{"error":"Repository not found"}`, http.StatusNotFound)
			return
		}
		var sib []map[string]string
		var names []string
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(dir, path)
				names = append(names, filepath.ToSlash(rel))
			}
			return nil
		})
		sort.Strings(names)
		for _, n := range names {
			sib = append(sib, map[string]string{"rfilename": n})
		}
		json.NewEncoder(w).Encode(map[string]any{"id": id, "sha": Commit(key), "siblings": sib})
		return
	}
	// /OWNER/NAME/resolve/SHA/FILE or /datasets/OWNER/NAME/resolve/SHA/FILE
	kind := "models"
	if rest, ok := strings.CutPrefix(p, "/datasets/"); ok {
		kind, p = "datasets", "/"+rest
	}
	id, rest, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/resolve/")
	key := kind + "/" + id
	dir, known := h.repo(key)
	sha, file, _ := strings.Cut(rest, "/")
	if !ok || !known || sha != Commit(key) {
		http.Error(w, `{"error":"Entry not found"}`, http.StatusNotFound)
		return
	}
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(file)))
	if err != nil {
		http.Error(w, `{"error":"Entry not found"}`, http.StatusNotFound)
		return
	}
	w.Write(b)
}

func (h *Hub) repo(key string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.repos[key]
	return d, ok
}
