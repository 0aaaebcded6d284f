package offline

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// DefaultEndpoint is the Hugging Face Hub.
const DefaultEndpoint = "https://huggingface.co"

var shaRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Options tune Stage.
type Options struct {
	// Endpoint is the hub's base URL: $HF_ENDPOINT, else DefaultEndpoint.
	Endpoint string
	// Token authenticates to the hub (gated models): $HF_TOKEN when empty.
	Token string
	// Client makes the requests; nil: a client without an overall
	// timeout (weights are large), with a 60-second wait for headers.
	Client *http.Client
	// Python prepares the data sets (it needs the datasets library, the
	// version the jobs use); "python3" when empty.
	Python string
	// Log receives one line per artefact.
	Log io.Writer
}

func (o *Options) fill() {
	if o.Endpoint == "" {
		o.Endpoint = os.Getenv("HF_ENDPOINT")
	}
	if o.Endpoint == "" {
		o.Endpoint = DefaultEndpoint
	}
	o.Endpoint = strings.TrimRight(o.Endpoint, "/")
	if o.Token == "" {
		o.Token = os.Getenv("HF_TOKEN")
	}
	if o.Client == nil {
		o.Client = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: 60 * time.Second}}
	}
	if o.Python == "" {
		o.Python = "python3"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Stage puts every artefact of as that the cache at dir lacks into it:
// hub models and repositories downloaded into the hub's cache layout,
// data sets prepared by the datasets library (run by o.Python against the
// hub), files downloaded (and gunzipped). A model given as a directory is
// not staged. It returns the first error, having staged what came before.
func Stage(ctx context.Context, dir, specDir string, as []Artefact, o Options) error {
	o.fill()
	for _, a := range as {
		if Present(dir, specDir, a) {
			fmt.Fprintf(o.Log, "%s: already staged\n", a)
			continue
		}
		if a.Local() {
			return fmt.Errorf("%s (%s): the directory has no config.json, and agora stages hub models only", a.ID, strings.Join(a.For, ", "))
		}
		start := time.Now()
		var err error
		switch a.Kind {
		case Model, Repo:
			err = stageRepo(ctx, dir, a, o)
		case Dataset:
			err = stageDataset(ctx, dir, a, o)
		case File:
			err = stageFile(ctx, dir, a, o)
		default:
			err = fmt.Errorf("unknown kind %q", a.Kind)
		}
		if err != nil {
			return fmt.Errorf("stage %s: %w", a, err)
		}
		if !Present(dir, specDir, a) {
			return fmt.Errorf("stage %s: done, but the cache still lacks it", a)
		}
		fmt.Fprintf(o.Log, "%s: staged in %s\n", a, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// repoInfo is the part of the hub's revision API answer that is used.
type repoInfo struct {
	SHA      string `json:"sha"`
	Siblings []struct {
		RFilename string `json:"rfilename"`
	} `json:"siblings"`
}

// weightExts are the weight formats of a model repository: when it has
// safetensors, the others (duplicates in older formats) are left out.
var weightExts = []string{".bin", ".pt", ".pth", ".h5", ".msgpack", ".ot", ".onnx", ".gguf", ".ckpt"}

// pickFiles chooses what to download of a repository: everything of a
// data set repository; of a model, all but the original/ checkpoints and,
// when there are safetensors, the other weight formats.
func pickFiles(kind string, files []string) []string {
	if kind != Model {
		return files
	}
	safetensors := false
	for _, f := range files {
		if strings.HasSuffix(f, ".safetensors") {
			safetensors = true
		}
	}
	var out []string
	for _, f := range files {
		if strings.HasPrefix(f, "original/") {
			continue
		}
		skip := false
		for _, ext := range weightExts {
			if safetensors && strings.HasSuffix(f, ext) {
				skip = true
			}
		}
		if !skip {
			out = append(out, f)
		}
	}
	return out
}

// stageRepo downloads a hub repository's files at its main revision into
// HUB/{models,datasets}--OWNER--NAME/snapshots/SHA/ and then writes
// refs/main, so that an interrupted download is never taken for a staged
// one.
func stageRepo(ctx context.Context, dir string, a Artefact, o Options) error {
	api, resolve := "models", ""
	if a.Kind != Model {
		api, resolve = "datasets", "datasets/"
	}
	var info repoInfo
	u := o.Endpoint + "/api/" + api + "/" + escapePath(a.ID) + "/revision/main"
	if err := get(ctx, o, u, func(r io.Reader) error { return json.NewDecoder(r).Decode(&info) }); err != nil {
		return err
	}
	info.SHA = strings.ToLower(info.SHA)
	if !shaRE.MatchString(info.SHA) {
		return fmt.Errorf("the hub resolved main to %q, not a commit", info.SHA)
	}
	var files []string
	for _, s := range info.Siblings {
		if !fs.ValidPath(s.RFilename) || strings.Contains(s.RFilename, `\`) {
			return fmt.Errorf("the hub listed an unsafe file name %q", s.RFilename)
		}
		files = append(files, s.RFilename)
	}
	files = pickFiles(a.Kind, files)
	if len(a.Files) > 0 {
		listed := map[string]bool{}
		for _, f := range files {
			listed[f] = true
		}
		for _, f := range a.Files {
			if !listed[f] {
				return fmt.Errorf("the hub lists no file %s at %s", f, info.SHA[:12])
			}
		}
		files = a.Files
	}
	if len(files) == 0 {
		return fmt.Errorf("the hub lists no files at %s", info.SHA[:12])
	}
	repo := repoDir(dir, a.Kind, a.ID)
	snap := filepath.Join(repo, "snapshots", info.SHA)
	for _, f := range files {
		dest := filepath.Join(snap, filepath.FromSlash(f))
		if st, err := os.Stat(dest); err == nil && st.Mode().IsRegular() {
			continue
		}
		u := o.Endpoint + "/" + resolve + escapePath(a.ID) + "/resolve/" + info.SHA + "/" + escapePath(f)
		if err := get(ctx, o, u, func(r io.Reader) error { return writeAtomic(dest, r) }); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	return writeAtomic(filepath.Join(repo, "refs", "main"), strings.NewReader(info.SHA))
}

// prepareDataset is run by Options.Python: load_dataset with the hub
// reachable, which leaves the prepared data set in HF_DATASETS_CACHE.
const prepareDataset = `import sys, datasets
datasets.load_dataset(sys.argv[1], sys.argv[2] or None)
`

func stageDataset(ctx context.Context, dir string, a Artefact, o Options) error {
	cmd := exec.CommandContext(ctx, o.Python, "-c", prepareDataset, a.ID, a.Config)
	env := []string{}
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT":
			continue
		}
		env = append(env, kv)
	}
	for k, v := range Env(dir) {
		switch k {
		case "HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE":
			env = append(env, k+"="+v)
		}
	}
	cmd.Env = append(env, "HF_ENDPOINT="+o.Endpoint)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tail := strings.TrimSpace(string(out))
		if len(tail) > 2000 {
			tail = "…" + tail[len(tail)-2000:]
		}
		return fmt.Errorf("%s -c 'datasets.load_dataset(%q, %q)': %v\n%s", o.Python, a.ID, a.Config, err, tail)
	}
	return nil
}

func stageFile(ctx context.Context, dir string, a Artefact, o Options) error {
	dest := filepath.Join(dir, filesDir, a.ID)
	return get(ctx, o, a.URL, func(r io.Reader) error {
		if strings.HasSuffix(a.URL, ".gz") {
			z, err := gzip.NewReader(r)
			if err != nil {
				return err
			}
			defer z.Close()
			r = z
		}
		return writeAtomic(dest, r)
	})
}

// get fetches u and hands the body to read; the token goes to the hub
// only.
func get(ctx context.Context, o Options, u string, read func(io.Reader) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if o.Token != "" && strings.HasPrefix(u, o.Endpoint+"/") {
		req.Header.Set("Authorization", "Bearer "+o.Token)
	}
	resp, err := o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach %s: %w", host(u), err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s answered %s: the repository is gated or private; accept its terms on the hub and set HF_TOKEN", host(u), resp.Status)
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s answered 404 for %s: no such repository or file", host(u), u)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s answered %s for %s", host(u), resp.Status, u)
	}
	return read(resp.Body)
}

func host(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Host
	}
	return u
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return path.Join(parts...)
}

// writeAtomic writes r to dest through a temporary file beside it.
func writeAtomic(dest string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".agora-stage-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}
