// Package offlinetest is a stand-in Hugging Face Hub for tests of staging:
// it serves directories as model and data set repositories (the revision
// API, resolve with the commit and ETag headers, tree listings and
// paths-info: what agora's stager and huggingface_hub's clients ask) and
// plain files at other paths, and keeps the requests.
package offlinetest

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
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

// Requests returns the requests so far, "METHOD PATH?QUERY".
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
	h.requests = append(h.requests, r.Method+" "+r.URL.RequestURI())
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
	if rest, ok := strings.CutPrefix(p, "/api/"); ok {
		h.serveAPI(w, r, rest)
		return
	}
	// /OWNER/NAME/resolve/REV/FILE or /datasets/OWNER/NAME/resolve/REV/FILE
	kind := "models"
	if rest, ok := strings.CutPrefix(p, "/datasets/"); ok {
		kind, p = "datasets", "/"+rest
	}
	id, rest, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/resolve/")
	key := kind + "/" + id
	dir, known := h.repo(key)
	rev, file, _ := strings.Cut(rest, "/")
	if !ok || !known {
		notFound(w, "RepoNotFound")
		return
	}
	if rev != "main" && rev != Commit(key) {
		notFound(w, "RevisionNotFound")
		return
	}
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(file)))
	if err != nil {
		w.Header().Set("X-Repo-Commit", Commit(key))
		notFound(w, "EntryNotFound")
		return
	}
	w.Header().Set("X-Repo-Commit", Commit(key))
	w.Header().Set("ETag", `"`+blobID(b)+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(b)
}

func notFound(w http.ResponseWriter, code string) {
	w.Header().Set("X-Error-Code", code)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	json.NewEncoder(w).Encode(map[string]string{"error": code})
}

// blobID is git's object id of b, as the hub gives a file's oid.
func blobID(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// serveAPI answers /api/{models,datasets}/OWNER/NAME[/revision/REV |
// /tree/REV[/PATH] | /paths-info/REV].
func (h *Hub) serveAPI(w http.ResponseWriter, r *http.Request, rest string) {
	kind, rest, _ := strings.Cut(rest, "/")
	parts := strings.SplitN(rest, "/", 4)
	if len(parts) < 2 {
		notFound(w, "RepoNotFound")
		return
	}
	id := parts[0] + "/" + parts[1]
	key := kind + "/" + id
	dir, known := h.repo(key)
	if !known {
		notFound(w, "RepoNotFound")
		return
	}
	op, rev, sub := "", "main", ""
	if len(parts) >= 3 {
		op = parts[2]
	}
	if len(parts) == 4 {
		rev, sub, _ = strings.Cut(parts[3], "/")
		rev, _ = url.PathUnescape(rev)
	}
	if rev != "main" && rev != Commit(key) {
		notFound(w, "RevisionNotFound")
		return
	}
	files := listFiles(dir)
	entry := func(name string) map[string]any {
		b, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		return map[string]any{"type": "file", "path": name, "size": len(b), "oid": blobID(b)}
	}
	w.Header().Set("Content-Type", "application/json")
	switch op {
	case "", "revision":
		var sib []map[string]string
		for _, n := range files {
			sib = append(sib, map[string]string{"rfilename": n})
		}
		json.NewEncoder(w).Encode(map[string]any{"id": id, "sha": Commit(key), "siblings": sib, "private": false,
			"disabled": false, "gated": false, "lastModified": "2026-01-01T00:00:00.000Z", "tags": []string{}, "cardData": map[string]any{}})
	case "tree":
		sub = strings.Trim(sub, "/")
		recursive := r.URL.Query().Get("recursive") == "true" || r.URL.Query().Get("recursive") == "True"
		var out []map[string]any
		dirs := map[string]bool{}
		for _, n := range files {
			rel := n
			if sub != "" {
				var ok bool
				if rel, ok = strings.CutPrefix(n, sub+"/"); !ok {
					continue
				}
			}
			segs := strings.Split(rel, "/")
			for i := 1; i < len(segs); i++ {
				d := strings.Join(segs[:i], "/")
				if sub != "" {
					d = sub + "/" + d
				}
				if !dirs[d] && (recursive || i == 1) {
					dirs[d] = true
					out = append(out, map[string]any{"type": "directory", "path": d, "size": 0, "oid": Commit(d)})
				}
			}
			if recursive || len(segs) == 1 {
				out = append(out, entry(n))
			}
		}
		if out == nil {
			out = []map[string]any{}
		}
		json.NewEncoder(w).Encode(out)
	case "paths-info":
		r.ParseForm()
		out := []map[string]any{}
		for _, p := range r.Form["paths"] {
			p = strings.Trim(p, "/")
			for _, n := range files {
				if n == p {
					out = append(out, entry(n))
				} else if strings.HasPrefix(n, p+"/") {
					out = append(out, map[string]any{"type": "directory", "path": p, "size": 0, "oid": Commit(p)})
					break
				}
			}
		}
		json.NewEncoder(w).Encode(out)
	default:
		notFound(w, "EntryNotFound")
	}
}

// listFiles is every file under dir, slash-separated and sorted.
func listFiles(dir string) []string {
	var names []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(names)
	return names
}

func (h *Hub) repo(key string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.repos[key]
	return d, ok
}
