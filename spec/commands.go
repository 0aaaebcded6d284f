package spec

import (
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"
	"text/template"

	"cuelang.org/go/cue"
)

// TrainCommandData is what a trainer "command" template (student.command)
// sees.
type TrainCommandData struct {
	DataPath, OutputDir, BaseModel, RunDir string
	// SFTConfig and AccelerateConfig are the paths of the rendered
	// configurations (written for every trainer).
	SFTConfig, AccelerateConfig string
	GPUs, Nodes                 int
	Hyperparameters             Hyperparameters
}

// BenchmarkCommandData is what a benchmark's command template sees.
type BenchmarkCommandData struct {
	ModelPath, OutputDir, Benchmark string
	FewShot                         bool
	Port                            int
}

// RewardCommandData is what a reward command template
// (metrics.reward.command) sees.
type RewardCommandData struct {
	// SpecDir is the directory of the spec, for scripts kept beside it;
	// Dir the step's run directory, where the job runs.
	Model, Data, Output, Dir, SpecDir string
	GPUs, Items                       int
}

// CommandTemplate parses a command template as the engine runs it (a
// reference to a field its data lacks is an error, not "<no value>").
func CommandTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Option("missingkey=error").Parse(text)
}

// checkCommand refuses a command template that the engine could not
// render: a syntax error, or a field the data does not have (found by
// rendering it with the data's zero value).
func (l *loader) checkCommand(at []cue.Selector, text string, data any) {
	if strings.TrimSpace(text) == "" {
		return
	}
	t, err := CommandTemplate("command", text)
	if err == nil {
		err = t.Execute(io.Discard, data)
	}
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "template: ")
		if m := unknownField.FindStringSubmatch(msg); m != nil {
			msg = fmt.Sprintf("%s: no field %s: the template sees %s", m[1], m[2], fieldList(reflect.TypeOf(data)))
		}
		l.at(at, "%s", msg)
	}
}

// unknownField matches text/template's error for a field the data lacks.
var unknownField = regexp.MustCompile(`^(command:\d+:\d+): executing "command" at <[^>]*>: can't evaluate field (\w+) in type `)

// fieldList names a data type's fields as a template writes them.
func fieldList(t reflect.Type) string {
	var out []string
	for i := range t.NumField() {
		out = append(out, "{{."+t.Field(i).Name+"}}")
	}
	return strings.Join(out, ", ")
}

// checkCommands checks the command templates of the student, the
// benchmarks and the reward metric.
func (l *loader) checkCommands(exp *Experiment) {
	l.checkCommand(sel("student", "command"), exp.Student.Command, TrainCommandData{})
	for _, name := range sortedKeys(exp.Evaluation.Benchmarks) {
		l.checkCommand(sel("evaluation", "benchmarks", name, "command"), exp.Evaluation.Benchmarks[name].Command, BenchmarkCommandData{})
	}
	if m := exp.Metrics; m != nil && m.Reward != nil {
		l.checkCommand(sel("metrics", "reward", "command"), m.Reward.Command, RewardCommandData{})
	}
}
