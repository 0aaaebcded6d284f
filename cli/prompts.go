package cli

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/agorabench/agora/promptimport"
)

const promptsSynopsis = "prompts import [-o DIR] [-force] CHECKOUT"

// runPrompts is "agora prompts import": the AgoraBench authors' prompt
// files, read from the user's checkout of their repository, written as
// agora templates with the spec fragment that uses them.
func runPrompts(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "import" {
		fmt.Fprintf(stderr, "Usage: agora %s\n", promptsSynopsis)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			return ExitOK
		}
		return ExitError
	}
	fs := newFlags("prompts import", promptsSynopsis, stderr)
	out := fs.String("o", "agorabench-prompts", "`directory` for the templates and the spec fragment (settings.cue), named in the fragment as given: run it in your spec's directory")
	force := fs.Bool("force", false, "overwrite the files of an earlier import")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return flagErr(err)
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "agora prompts import: want the directory of a checkout of the authors' repository (github.com/neulab/data-agora), got %d arguments\n", len(pos))
		return ExitError
	}
	res, err := promptimport.Import(promptimport.Options{Checkout: pos[0], OutDir: *out, Force: *force})
	if err != nil {
		fmt.Fprintf(stderr, "agora prompts import: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(stdout, "Imported %d settings' meta-prompts into %s:\n", len(res.Settings), *out)
	for _, s := range res.Settings {
		extra := ""
		if s.JSONFile != "" {
			extra = ", " + s.JSONFile
		}
		draws := ""
		if len(s.Topics) > 0 {
			draws += fmt.Sprintf(", %d topics", len(s.Topics))
		}
		if len(s.Openings) > 0 {
			draws += fmt.Sprintf(", %d openings", len(s.Openings))
		}
		fmt.Fprintf(stdout, "  %-7s %s%s%s\n", s.Name, s.File, extra, draws)
	}
	switch {
	case res.System != "" && res.Stop != "":
		fmt.Fprintf(stdout, "System message (%d characters) and stop sequence %q from %s.\n", len(res.System), res.Stop, filepath.ToSlash(promptimport.Script))
	case res.System != "":
		fmt.Fprintf(stdout, "System message (%d characters) from %s; no stop sequence found.\n", len(res.System), filepath.ToSlash(promptimport.Script))
	case res.Stop != "":
		fmt.Fprintf(stdout, "Stop sequence %q from %s; no system message found.\n", res.Stop, filepath.ToSlash(promptimport.Script))
	}
	for _, n := range res.Notes {
		fmt.Fprintf(stdout, "Note: %s.\n", n)
	}
	fmt.Fprintf(stdout, "Add %s to your spec: each setting's prompt block.\n", res.Fragment)
	return ExitOK
}
