package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/plugins/host"
	"github.com/agorabench/agora/preflight"
	"github.com/agorabench/agora/providers"
	"github.com/agorabench/agora/seeddata"
	"github.com/agorabench/agora/spec"
)

// preflightTimeout bounds the whole preflight (each endpoint check has
// its own 30 s).
const preflightTimeout = 3 * time.Minute

// runPreflight checks what p's steps need (docs/apply.md, "Preflight")
// and prints every problem and note to stderr as "file:line:col: path:
// message". It reports whether there was no problem.
func runPreflight(ctx context.Context, cmd string, exp *spec.Experiment, p *plan.Plan, stderr io.Writer) bool {
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	endpoint := providers.New(providers.Tuning{AttemptTimeout: 30 * time.Second})
	dirs := host.SearchPath(exp.Source.Dir)
	// Plugins are started as apply will start them, and ended here.
	plugins := host.New(host.Options{Dirs: dirs, StartTimeout: 30 * time.Second})
	defer plugins.Close()
	uses := pluginUses(exp)
	rep := preflight.Run(ctx, exp, p, preflight.Options{
		Endpoint: func(g *spec.Generator) (preflight.Checker, error) {
			pv, err := endpoint(g)
			if err != nil {
				return nil, err
			}
			if c, ok := pv.(preflight.Checker); ok {
				return c, nil
			}
			return noCheck{}, nil
		},
		Plugin: func(name string) (string, string, error) {
			path, err := host.Find(name, dirs)
			if err != nil {
				return "", "", err
			}
			sum, err := host.Checksum(path)
			return path, sum, err
		},
		PluginCheck: func(ctx context.Context, g *spec.Generator) error {
			u := pluginUse{g: g}
			for _, x := range uses {
				if x.g == g {
					u = x
				}
			}
			_, _, err := verifyPlugin(ctx, plugins, dirs, u)
			return err
		},
		Seeds: seeddata.Options{Dir: exp.Source.Dir, CacheDir: filepath.Join(stateDir(exp), "cache", "hf")},
	})
	for _, n := range rep.Notes {
		fmt.Fprintf(stderr, "%s: %s: note: %s\n", n.Pos, n.Path, n.Msg)
	}
	for _, pr := range rep.Problems {
		fmt.Fprintln(stderr, pr.String())
	}
	if n := len(rep.Problems); n > 0 {
		if cmd == "plan" {
			fmt.Fprintf(stderr, "agora plan: preflight found %d problem%s: agora apply stops on %s before anything is spent\n",
				n, plural(n), map[bool]string{true: "it", false: "them"}[n == 1])
		} else {
			fmt.Fprintf(stderr, "agora %s: preflight found %d problem%s before anything was spent; fix %s, or pass -skip-preflight to apply all the same\n",
				cmd, n, plural(n), map[bool]string{true: "it", false: "them"}[n == 1])
		}
		return false
	}
	return true
}

// noCheck is the check of a provider that has none of its own.
type noCheck struct{}

func (noCheck) Check(context.Context) error { return nil }
