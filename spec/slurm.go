package spec

import (
	"fmt"
	"regexp"
	"strings"
)

// MemPattern is what sbatch --mem accepts: a number with an optional unit
// K, M, G or T (KB, KiB, … too), in any case.
var MemPattern = regexp.MustCompile(`(?i)^([0-9]+)\s*(?:([KMGT])(?:I?B)?)?$`)

// SlurmProblem is one value of a Slurm block that sbatch cannot take:
// Field is partition, account, qos, container, modules or directives,
// Index the list element (-1 for the others).
type SlurmProblem struct {
	Field   string
	Index   int
	Message string
}

// Problems lists the values of s that a job script cannot carry. The
// Slurm executor refuses a job with any of them (executors/slurm), and
// the spec's check refuses them first, at their position.
func (s Slurm) Problems() []SlurmProblem {
	var out []SlurmProblem
	word := func(field string, i int, what, v string) {
		if v != "" && strings.IndexFunc(v, isSpaceOrControl) >= 0 {
			out = append(out, SlurmProblem{field, i, fmt.Sprintf("%s %q contains whitespace or control characters", what, v)})
		}
	}
	word("partition", -1, "partition", s.Partition)
	word("account", -1, "account", s.Account)
	word("qos", -1, "qos", s.QOS)
	word("container", -1, "container", s.Container)
	for i, m := range s.Modules {
		if m == "" {
			out = append(out, SlurmProblem{"modules", i, "module name is empty"})
		}
		word("modules", i, "module", m)
	}
	for i, d := range s.Directives {
		t := TrimDirective(d)
		switch {
		case !strings.HasPrefix(t, "-"):
			out = append(out, SlurmProblem{"directives", i, fmt.Sprintf("directive %q must be an sbatch option such as --constraint=h100", d)})
		case strings.ContainsFunc(t, isControl):
			out = append(out, SlurmProblem{"directives", i, fmt.Sprintf("directive %q contains control characters", d)})
		}
	}
	return out
}

// TrimDirective removes white space and a leading "#SBATCH" from an extra
// directive.
func TrimDirective(d string) string {
	t := strings.TrimSpace(d)
	if rest, ok := strings.CutPrefix(t, "#SBATCH"); ok {
		t = strings.TrimSpace(rest)
	}
	return t
}

// MemProblem says why sbatch cannot take mem as --mem ("" when it can).
func MemProblem(mem string) string {
	if mem != "" && !MemPattern.MatchString(strings.TrimSpace(mem)) {
		return fmt.Sprintf("mem %q is not a size like 64G or 512000M", mem)
	}
	return ""
}

// JobDirProblems say why a job cannot run in dir: its script changes into
// it and sbatch writes the log there (--output), so white space, control
// characters, % and \ break it.
func JobDirProblems(dir string) []string {
	var out []string
	if strings.IndexFunc(dir, isSpaceOrControl) >= 0 {
		out = append(out, fmt.Sprintf("job dir %q contains whitespace or control characters", dir))
	}
	if strings.ContainsAny(dir, `%\`) {
		out = append(out, fmt.Sprintf("job dir %q contains %% or \\, which sbatch expands in --output", dir))
	}
	return out
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func isSpaceOrControl(r rune) bool {
	return r == ' ' || r == '\u00a0' || isControl(r) || r == '\u2028' || r == '\u2029'
}
