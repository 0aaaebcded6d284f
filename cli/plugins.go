package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agorabench/agora/internal/redact"
	"github.com/agorabench/agora/plugins/host"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/tokens"
)

// logFile is agora's log in the state directory: plugins' log lines and
// the plugin host's own.
const logFile = "agora.log"

// newPluginHost returns the host that runs exp's plugin generators,
// logging into dir/agora.log (at $AGORA_LOG_LEVEL, info by default), and
// the function that ends its plugins and closes the log.
func newPluginHost(exp *spec.Experiment, dir string) (*host.Host, func()) {
	var out io.Writer = io.Discard
	var f *os.File
	if err := os.MkdirAll(dir, 0o755); err == nil {
		if f, err = os.OpenFile(filepath.Join(dir, logFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			// Plugins log what they like: the environment's secrets
			// never reach the file.
			out = redact.FromEnv().Writer(f)
		}
	}
	level := hclog.LevelFromString(os.Getenv("AGORA_LOG_LEVEL"))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	h := host.New(host.Options{Dirs: host.SearchPath(exp.Source.Dir),
		Logger: hclog.New(&hclog.LoggerOptions{Name: "agora", Output: out, Level: level})})
	return h, func() {
		h.Close()
		if f != nil {
			f.Close()
		}
	}
}

func runPlugins(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "verify" {
		return runPluginsVerify(ctx, args[1:], stdout, stderr)
	}
	fs := newFlags("plugins", "plugins [SPEC] | plugins verify [SPEC]", stderr)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return flagErr(err)
	}
	specDir, code, ok := pluginSpecDir("plugins", pos, stderr)
	if !ok {
		return code
	}
	dirs := host.SearchPath(specDir)
	fmt.Fprintln(stdout, "Search path:")
	for _, d := range dirs {
		note := ""
		if _, err := os.Stat(d); err != nil {
			note = " (missing)"
		}
		fmt.Fprintf(stdout, "  %s%s\n", d, note)
	}
	found := host.List(dirs)
	if len(found) == 0 {
		fmt.Fprintf(stdout, "\nNo plugins found: a plugin NAME is an executable %sNAME in one of these directories.\n", host.Prefix)
		return ExitOK
	}
	h := host.New(host.Options{Dirs: dirs, StartTimeout: 10 * time.Second})
	defer h.Close()
	for _, f := range found {
		fmt.Fprintf(stdout, "\n%s  %s\n", f.Name, f.Path)
		sum, err := host.Checksum(f.Path)
		if err != nil {
			fmt.Fprintf(stdout, "  error     %v\n", err)
			continue
		}
		fmt.Fprintf(stdout, "  sha256    %s\n", sum)
		if f.Shadowed {
			fmt.Fprintf(stdout, "  shadowed  by the %s earlier on the search path: agora runs that one\n", f.Name)
			continue
		}
		p, err := h.Open(ctx, f.Name, "")
		var ve *host.VersionError
		switch {
		case errors.As(err, &ve):
			fmt.Fprintf(stdout, "  protocol  %d: incompatible, this agora speaks %s\n", ve.Plugin, host.SpokenVersions())
			continue
		case err != nil:
			// The first line, and the end of the plugin's stderr if the
			// message carries it, indented under it.
			fmt.Fprintf(stdout, "  error     %s\n", strings.ReplaceAll(err.Error(), "\n", "\n          "))
			continue
		}
		d := p.Description()
		fmt.Fprintf(stdout, "  protocol  %d\n", p.Version())
		fmt.Fprintf(stdout, "  offers    %s\n", capabilities(d))
		if d.Unavailable != "" {
			fmt.Fprintf(stdout, "  status    cannot serve requests: %s\n", d.Unavailable)
		}
		models := append([]host.Model(nil), d.Models...)
		sort.Slice(models, func(i, j int) bool { return models[i].ID < models[j].ID })
		width := 0
		for _, m := range models {
			width = max(width, len(m.ID))
		}
		for i, m := range models {
			label := "models"
			if i > 0 {
				label = ""
			}
			line := m.ID
			if m.InputPrice > 0 || m.OutputPrice > 0 {
				line = fmt.Sprintf("%-*s  $%g in / $%g out per 1M tokens", width, m.ID, m.InputPrice, m.OutputPrice)
				if m.BatchDiscount > 0 {
					line += fmt.Sprintf(", %g%% off in batches", m.BatchDiscount*100)
				}
			}
			fmt.Fprintf(stdout, "  %-8s  %s\n", label, line)
		}
	}
	return ExitOK
}

// pluginSpecDir is the directory of the spec argument (or of agora.cue
// here), whose .agora/plugins is on the search path.
func pluginSpecDir(cmd string, pos []string, stderr io.Writer) (string, int, bool) {
	dir := "."
	switch len(pos) {
	case 0:
	case 1:
		if _, err := os.Stat(pos[0]); err != nil {
			fmt.Fprintf(stderr, "agora %s: %s: no such file\n", cmd, pos[0])
			return "", ExitError, false
		}
		dir = filepath.Dir(pos[0])
	default:
		fmt.Fprintf(stderr, "agora %s: want at most one spec file, got %d\n", cmd, len(pos))
		return "", ExitError, false
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return dir, 0, true
}

func runPluginsVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("plugins verify", "plugins verify [SPEC]", stderr)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return flagErr(err)
	}
	path := "agora.cue"
	switch len(pos) {
	case 0:
	case 1:
		path = pos[0]
	default:
		fmt.Fprintf(stderr, "agora plugins verify: want one spec file, got %d\n", len(pos))
		return ExitError
	}
	exp, err := spec.Load(path)
	if err != nil {
		printLoadError(stderr, path, err)
		return ExitError
	}
	uses := pluginUses(exp)
	if len(uses) == 0 {
		fmt.Fprintf(stdout, "%s has no plugin generators.\n", path)
		return ExitOK
	}
	dirs := host.SearchPath(exp.Source.Dir)
	h := host.New(host.Options{Dirs: dirs, StartTimeout: 10 * time.Second})
	defer h.Close()
	failed, unpinned := 0, 0
	for _, u := range uses {
		line, pinned, err := verifyPlugin(ctx, h, dirs, u)
		if err != nil {
			failed++
			fmt.Fprintf(stderr, "%s: %s\n", u.label, err)
			continue
		}
		if !pinned {
			unpinned++
		}
		fmt.Fprintf(stdout, "%s: %s\n", u.label, line)
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "agora plugins verify: %d of %d plugin generator%s failed\n", failed, len(uses), plural(len(uses)))
		return ExitError
	}
	if unpinned > 0 {
		fmt.Fprintf(stdout, "%d plugin generator%s not pinned: agora runs whatever binary it finds.\n", unpinned, plural(unpinned))
	}
	return ExitOK
}

// pluginUse is a generator (or a metric's model declared in place) that
// runs through a plugin, and what the spec needs of it.
type pluginUse struct {
	label string // "generator NAME" or "metrics.judge"
	g     *spec.Generator
	// embeddings: the diversity metric embeds with it.
	embeddings bool
}

// pluginUses lists exp's plugin generators by name, then the metrics'
// plugin models declared in place.
func pluginUses(exp *spec.Experiment) []pluginUse {
	var names []string
	for n, g := range exp.Generators {
		if g.Provider.Plugin != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var out []pluginUse
	for _, n := range names {
		out = append(out, pluginUse{label: "generator " + n, g: exp.Generators[n]})
	}
	if m := exp.Metrics; m != nil {
		var div *spec.Generator
		if m.Diversity != nil {
			div = m.Diversity.Gen
		}
		for _, mm := range []struct {
			name string
			g    *spec.Generator
		}{{"judge", judgeGen(m.Judge)}, {"judge_2", judgeGen(m.Judge2)}, {"diversity", div}} {
			if mm.g == nil || mm.g.Provider.Plugin == "" {
				continue
			}
			found := false
			for i := range out {
				if out[i].g == mm.g {
					found = true
					out[i].embeddings = out[i].embeddings || mm.g == div
				}
			}
			if !found {
				out = append(out, pluginUse{label: "metrics." + mm.name, g: mm.g, embeddings: mm.g == div})
			}
		}
	}
	return out
}

func judgeGen(j *spec.JudgeMetric) *spec.Generator {
	if j == nil {
		return nil
	}
	return j.Gen
}

// verifyPlugin checks one plugin use as apply will: the plugin found, its
// checksum equal to the pin, the protocol version, the plugin able to
// serve (describe's unavailable), its health service serving, the model
// listed, a price (the spec's or the plugin's), embeddings when the
// diversity metric needs them, and batches when a generator's batch mode
// is on. It returns the line to print, or the
// first problem.
func verifyPlugin(ctx context.Context, h *host.Host, dirs []string, u pluginUse) (string, bool, error) {
	g := u.g
	pl := g.Provider.Plugin
	p, err := host.Find(pl, dirs)
	if err != nil {
		return "", false, err
	}
	sum, err := host.Checksum(p)
	if err != nil {
		return "", false, fmt.Errorf("plugin %s: %v", pl, err)
	}
	pin := g.Provider.SHA256
	if pin != "" && !strings.EqualFold(pin, sum) {
		return "", false, &host.ChecksumError{Name: pl, Path: p, Got: sum, Want: pin}
	}
	// The pin holds (or there is none): start the plugin as apply does.
	c, err := h.Client(ctx, host.Config{Generator: g.Name, Plugin: pl, SHA256: pin, Model: g.Model, Price: g.Price,
		Limits: g.Limits, Sampling: g.Sampling})
	if err != nil {
		return "", false, errors.New(strings.TrimPrefix(err.Error(), "generator "+g.Name+": "))
	}
	pg := c.Plugin()
	if err := pg.Ping(); err != nil {
		return "", false, err
	}
	if err := c.Check(ctx); err != nil {
		return "", false, errors.New(strings.TrimPrefix(err.Error(), "generator "+g.Name+": "))
	}
	d := pg.Description()
	notes := []string{fmt.Sprintf("protocol %d", pg.Version())}
	if len(d.Models) > 0 {
		notes = append(notes, "serves "+g.Model)
	}
	if g.Price == nil {
		m, _ := d.Model(g.Model)
		if m.InputPrice == 0 && m.OutputPrice == 0 {
			return "", false, fmt.Errorf("missing price: plugin %s advertises no price for model %s; set price: {input: …, output: …} in dollars per 1M tokens", pl, g.Model)
		}
		notes = append(notes, fmt.Sprintf("priced by the plugin at $%g in / $%g out per 1M tokens", m.InputPrice, m.OutputPrice))
	}
	if u.embeddings {
		if !d.Embeddings {
			return "", false, fmt.Errorf("metrics.diversity embeds with this model, and plugin %s (%s) serves no embeddings", pl, p)
		}
		notes = append(notes, "embeddings")
	}
	if g.BatchMode().On && strings.HasPrefix(u.label, "generator ") {
		if err := pg.BatchSupport(); err != nil {
			return "", false, err
		}
		notes = append(notes, "batches")
	}
	if pin == "" {
		return fmt.Sprintf("plugin %s (%s): not pinned (%s); to pin it: sha256: %q", pl, p, strings.Join(notes, ", "), sum), false, nil
	}
	return fmt.Sprintf("plugin %s (%s): sha256 matches the pin (%s)", pl, p, strings.Join(notes, ", ")), true, nil
}

// capabilities is the offers line of agora plugins.
func capabilities(d host.Description) string {
	caps := []string{"completions"}
	if d.CountTokens {
		caps = append(caps, "token counting")
	}
	if d.Embeddings {
		caps = append(caps, "embeddings")
	}
	if d.Batches {
		caps = append(caps, "batches")
	}
	return strings.Join(caps, ", ")
}

// pluginCounter starts exp's plugin generators' plugins and returns a
// token counter that asks those offering token counting, by model, and
// falls back to the offline count for the rest. done ends the plugins and
// reports counts that failed (their estimates fell back too).
func pluginCounter(ctx context.Context, exp *spec.Experiment, stderr io.Writer) (*tokens.Counter, func(), error) {
	h := host.New(host.Options{Dirs: host.SearchPath(exp.Source.Dir), StartTimeout: 30 * time.Second})
	byModel := map[string]*host.Plugin{}
	names := make([]string, 0, len(exp.Generators))
	for n := range exp.Generators {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		g := exp.Generators[n]
		if g.Provider.Plugin == "" {
			continue
		}
		p, err := h.Open(ctx, g.Provider.Plugin, g.Provider.SHA256)
		if err != nil {
			h.Close()
			return nil, nil, fmt.Errorf("generator %s: %w", n, err)
		}
		if p.Description().CountTokens {
			byModel[g.Model] = p
		}
	}
	var (
		mu     sync.Mutex
		cache  = map[[2]string]int{}
		failed = map[string]string{}
	)
	c := &tokens.Counter{External: func(model, text string) (int, string, bool) {
		p, ok := byModel[model]
		if !ok {
			return 0, "", false
		}
		key := [2]string{model, text}
		mu.Lock()
		n, hit := cache[key]
		mu.Unlock()
		if hit {
			return n, "plugin:" + p.Name, true
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		n, ok, err := p.CountTokens(cctx, model, []host.Message{{Role: "user", Content: text}})
		if err != nil || !ok {
			if err != nil {
				mu.Lock()
				failed[p.Name], _, _ = strings.Cut(err.Error(), "\n")
				mu.Unlock()
			}
			return 0, "", false
		}
		mu.Lock()
		cache[key] = n
		mu.Unlock()
		return n, "plugin:" + p.Name, true
	}}
	return c, func() {
		h.Close()
		for _, name := range sortedNames(failed) {
			fmt.Fprintf(stderr, "agora plan: plugin %s could not count tokens (%s): its estimates use the offline count\n", name, failed[name])
		}
	}, nil
}

func sortedNames(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
