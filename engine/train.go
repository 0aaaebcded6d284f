package engine

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/plan"
	"github.com/agorabench/agora/spec"
	"github.com/agorabench/agora/state"
)

// Files of a train step's run directory, .agora/runs/<step id>/.
const (
	// TrainData is the training set: one JSON object per line in TRL's
	// conversational prompt-completion format,
	// {"prompt": [{"role": "user", ...}], "completion": [{"role": "assistant", ...}]},
	// so that the loss is on the responses only (completion_only_loss)
	// whatever the base model's chat template; for axolotl, one
	// {"messages": [user, assistant]} per line.
	TrainData = "data.jsonl"
	// SFTConfig is TRL's configuration (`trl sft --config`).
	SFTConfig = "sft.yaml"
	// AccelerateConfig is accelerate's configuration: DeepSpeed ZeRO-3
	// over the job's GPUs.
	AccelerateConfig = "zero3.yaml"
	// AccelerateCPUConfig is accelerate's configuration of a CPU job
	// (gpus_per_node: 0): one process, no DeepSpeed.
	AccelerateCPUConfig = "accelerate-cpu.yaml"
	// AxolotlConfig is axolotl's configuration (trainer "axolotl"), whose
	// training set is TrainData in chat format ({"messages": [...]}) and
	// whose DeepSpeed ZeRO-3 configuration is DeepSpeedConfig.
	AxolotlConfig   = "axolotl.yaml"
	DeepSpeedConfig = "zero3.json"
	// ModelDir receives the trained weights, config and tokenizer.
	ModelDir = "model"
	// TrainLauncher runs the trainer's entry point (TRL's SFT script,
	// axolotl's train command) with resume and checkpoint-on-USR1
	// (train_launcher.py).
	TrainLauncher = "agora_train.py"
)

// trainLauncher is agora_train.py: a trainer's own entry point, resuming
// from the newest checkpoint in the output directory and saving one on
// SIGUSR1.
//
//go:embed train_launcher.py
var trainLauncher []byte

// Checkpointing on Slurm: the signal comes checkpointLead before the time
// limit (at most a quarter of it), and the trap waits for the save until
// checkpointMargin before the limit.
const (
	checkpointLead   = 10 * time.Minute
	checkpointMargin = time.Minute
)

// runDir is the absolute working directory of a step's jobs.
func (e *Engine) runDir(stepID string) (string, error) {
	dir, err := filepath.Abs(filepath.Join(e.opts.Dir, "runs", stepID))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, nil
}

// trainInputs mirror the compiler's inputs of a train step.
type trainInputs struct {
	Data            string               `json:"data"`
	SeedData        string               `json:"seed_data"`
	Base            string               `json:"base"`
	Trainer         string               `json:"trainer"`
	Command         string               `json:"command"`
	Hyperparameters spec.Hyperparameters `json:"hyperparameters"`
}

type trainRunner struct {
	e    *Engine
	byID map[string]plan.Step
}

func (r *trainRunner) run(ctx context.Context, s plan.Step) (string, error) {
	e := r.e
	var in trainInputs
	if err := json.Unmarshal(s.Inputs, &in); err != nil {
		return "", fmt.Errorf("train inputs: %w", err)
	}
	gen, ok := r.byID[in.Data]
	if !ok {
		return "", fmt.Errorf("train: the plan has no generate step %s", in.Data)
	}
	switch in.Trainer {
	case "", spec.TrainerTRL:
		if err := needTools(s.Executor, "train with trl", "accelerate", "trl"); err != nil {
			return "", err
		}
	case spec.TrainerAxolotl:
		if err := needTools(s.Executor, "train with axolotl", "accelerate", "axolotl"); err != nil {
			return "", err
		}
	}
	dir, err := e.runDir(s.ID)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, ModelDir)
	if done, err := e.completedJob(ctx, s.ID); err != nil {
		return "", err
	} else if done && checkModelDir(out) == nil {
		return out, nil
	}

	st := e.exp.Student
	data := filepath.Join(dir, TrainData)
	n, err := r.writeData(ctx, gen, in.SeedData != "", in.Trainer == spec.TrainerAxolotl, data)
	if err != nil {
		return "", err
	}
	if n == 0 {
		return "", fmt.Errorf("train: no training data (generate step %s accepted nothing)", gen.Address)
	}
	gpus := max(st.Hardware.GPUs(), 1)
	script, err := r.script(in, st, dir, data, out, gpus, n)
	if err != nil {
		return "", err
	}
	j := slurm.Job{
		Name:     "agora-train-" + shortID(s.ID),
		Dir:      dir,
		Script:   script,
		Hardware: st.Hardware,
		Requeue:  true,
		Env:      e.jobEnv("HF_TOKEN", "HF_HOME", "WANDB_API_KEY"),
	}
	if st.Slurm != nil {
		j.Slurm = *st.Slurm
	}
	switch in.Trainer {
	case "", spec.TrainerTRL, spec.TrainerAxolotl:
		j.SignalSeconds, j.Checkpoint = trainCheckpoint(dir, st.Hardware.TimeLimit)
	}
	if err := e.runJob(ctx, s, j, st.Hardware.GPUs()); err != nil {
		return "", wrapJobErr("train", err)
	}
	if err := checkModelDir(out); err != nil {
		return "", fmt.Errorf("train: the job exited 0 but %w", err)
	}
	return out, nil
}

// completedJob reports whether the step's last job completed.
func (e *Engine) completedJob(ctx context.Context, stepID string) (bool, error) {
	jobs, err := e.jobs.Jobs(ctx, stepID)
	if err != nil || len(jobs) == 0 {
		return false, err
	}
	return jobs[len(jobs)-1].Status == string(slurm.Completed), nil
}

// checkModelDir says what a trained model's directory lacks: config.json,
// weights (*.safetensors) and tokenizer files (tokenizer_config.json and
// tokenizer.json or tokenizer.model).
func checkModelDir(dir string) error {
	var missing []string
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	}
	if !exists("config.json") {
		missing = append(missing, "config.json")
	}
	if w, _ := filepath.Glob(filepath.Join(dir, "*.safetensors")); len(w) == 0 {
		missing = append(missing, "*.safetensors")
	}
	if !exists("tokenizer_config.json") {
		missing = append(missing, "tokenizer_config.json")
	}
	if !exists("tokenizer.json") && !exists("tokenizer.model") {
		missing = append(missing, "tokenizer.json or tokenizer.model")
	}
	if len(missing) > 0 {
		return fmt.Errorf("the model directory %s lacks %s", dir, strings.Join(missing, ", "))
	}
	return nil
}

// chatRecord is a line of axolotl's training set (type chat_template).
type chatRecord struct {
	Messages []Message `json:"messages"`
}

type trainRecord struct {
	Prompt     []Message `json:"prompt"`
	Completion []Message `json:"completion"`
}

// writeData writes the generate step's accepted instances, and the seed
// data for instance generation, to path as TRL prompt-completion JSONL.
func (r *trainRunner) writeData(ctx context.Context, gen plan.Step, seeds, chat bool, path string) (int, error) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, fmt.Errorf("train data: %w", err)
	}
	defer os.Remove(tmp)
	bw := bufio.NewWriter(f)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	n := 0
	write := func(instruction, response string) error {
		n++
		user, assistant := Message{Role: "user", Content: instruction}, Message{Role: "assistant", Content: response}
		if chat {
			return enc.Encode(chatRecord{Messages: []Message{user, assistant}})
		}
		return enc.Encode(trainRecord{Prompt: []Message{user}, Completion: []Message{assistant}})
	}
	err = r.e.gens.Accepted(ctx, gen.ID, func(g state.Generation) error { return write(g.Instruction, g.Response) })
	if err == nil && seeds {
		set := r.e.exp.Settings[gen.Setting]
		switch {
		case set == nil:
			err = fmt.Errorf("the spec has no setting %q: the plan is stale", gen.Setting)
		case r.e.opts.Seeds == nil:
			err = fmt.Errorf("no seed loader for the seed data of setting %s", gen.Setting)
		default:
			items, _, lerr := r.e.opts.Seeds.Load(ctx, set)
			err = lerr
			for _, it := range items {
				if err != nil {
					break
				}
				if it.Instruction != "" && it.Response != "" {
					err = write(it.Instruction, it.Response)
				}
			}
		}
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return 0, fmt.Errorf("train data: %w", err)
	}
	return n, nil
}

// script writes the trainer's configurations to dir and returns the job
// body.
//
// TRL (the default) runs as
//
//	accelerate launch --config_file zero3.yaml --num_processes N agora_train.py trl.scripts.sft --config sft.yaml
//
// accelerate's own launcher with an explicit DeepSpeed ZeRO-3 file rather
// than `trl sft --accelerate_config zero3`, whose built-in configurations
// vary between TRL versions; agora_train.py runs the module behind
// `trl sft`. axolotl runs as
//
//	accelerate launch --num_processes N agora_train.py axolotl.cli.train axolotl.yaml
//
// its DeepSpeed file named in axolotl.yaml.
func (r *trainRunner) script(in trainInputs, st spec.Student, dir, data, out string, gpus, examples int) (string, error) {
	if st.Hardware.Nodes > 1 && in.Trainer != spec.TrainerCommand {
		name := cmp.Or(in.Trainer, spec.TrainerTRL)
		return "", fmt.Errorf("trainer %s: training on %d nodes is not yet supported by this version of agora (use one node, or trainer command with your own launcher)", name, st.Hardware.Nodes)
	}
	cpu := st.Hardware.GPUsPerNode == 0
	warmup := warmupSteps(in.Hyperparameters, examples, gpus)
	sft := filepath.Join(dir, SFTConfig)
	acc := filepath.Join(dir, AccelerateConfig)
	accBody := renderZero3(in.Hyperparameters, gpus, max(st.Hardware.Nodes, 1))
	if cpu {
		acc = filepath.Join(dir, AccelerateCPUConfig)
		accBody = renderCPUAccelerate()
	}
	if err := os.WriteFile(sft, []byte(renderSFTConfig(in, data, out, warmup, cpu)), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(acc, []byte(accBody), 0o644); err != nil {
		return "", err
	}
	switch in.Trainer {
	case "", spec.TrainerTRL:
		launcher, err := writeLauncher(dir)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%saccelerate launch --config_file %s --num_processes %d %s trl.scripts.sft --config %s\n",
			clearPids(dir), shQuote(acc), gpus, shQuote(launcher), shQuote(sft)), nil
	case spec.TrainerAxolotl:
		ds := filepath.Join(dir, DeepSpeedConfig)
		if err := os.WriteFile(ds, []byte(renderDeepSpeedZero3()), 0o644); err != nil {
			return "", err
		}
		if cpu {
			ds = "" // DeepSpeed needs GPUs
		}
		cfg := filepath.Join(dir, AxolotlConfig)
		if err := os.WriteFile(cfg, []byte(renderAxolotlConfig(in, data, out, ds, warmup)), 0o644); err != nil {
			return "", err
		}
		launcher, err := writeLauncher(dir)
		if err != nil {
			return "", err
		}
		accFlag := ""
		if cpu {
			accFlag = "--config_file " + shQuote(acc) + " "
		}
		return fmt.Sprintf("%saccelerate launch %s--num_processes %d %s axolotl.cli.train %s\n",
			clearPids(dir), accFlag, gpus, shQuote(launcher), shQuote(cfg)), nil
	case spec.TrainerCommand:
		if strings.TrimSpace(in.Command) == "" {
			return "", fmt.Errorf("trainer command: student.command is empty")
		}
		t, err := spec.CommandTemplate("student.command", in.Command)
		if err != nil {
			return "", fmt.Errorf("student.command: %w", err)
		}
		var b bytes.Buffer
		err = t.Execute(&b, spec.TrainCommandData{DataPath: data, OutputDir: out, BaseModel: in.Base, RunDir: dir,
			SFTConfig: sft, AccelerateConfig: acc, GPUs: gpus, Nodes: max(st.Hardware.Nodes, 1), Hyperparameters: in.Hyperparameters})
		if err != nil {
			return "", fmt.Errorf("student.command: %w", err)
		}
		return b.String(), nil
	}
	return "", fmt.Errorf("unknown trainer %q", in.Trainer)
}

// writeLauncher writes agora_train.py into dir and returns its path.
func writeLauncher(dir string) (string, error) {
	launcher := filepath.Join(dir, TrainLauncher)
	if err := os.WriteFile(launcher, trainLauncher, 0o755); err != nil {
		return "", err
	}
	return launcher, nil
}

// launcherPids is the shell glob of the launcher's pid files in dir.
func launcherPids(dir string) string {
	return shQuote(filepath.Join(dir, "agora_train.")) + "*.pid"
}

// clearPids is the job body's first line: a requeued run's trap must not
// signal the pids of the run before it.
func clearPids(dir string) string {
	return "rm -f " + launcherPids(dir) + "\n"
}

// trainCheckpoint returns the USR1 lead and the trap's checkpoint command
// of a TRL or axolotl job: signal every training process (their pid
// files), then wait for them to save and exit, until checkpointMargin
// before the limit.
func trainCheckpoint(dir, timeLimit string) (int, string) {
	limit, err := slurm.ParseTimeLimit(timeLimit)
	if err != nil || limit <= 0 {
		return 0, ""
	}
	lead := min(checkpointLead, limit/4)
	wait := int((lead - checkpointMargin) / time.Second)
	if wait < 10 {
		wait = int(lead/time.Second) / 2
	}
	pids := launcherPids(dir)
	return int(lead / time.Second), fmt.Sprintf(`for f in %s; do
	[ -e "$f" ] && kill -USR1 "$(cat "$f")" 2>/dev/null
done
i=0
while kill -0 "$AGORA_BODY_PID" 2>/dev/null && [ "$i" -lt %d ]; do
	sleep 1
	i=$((i + 1))
done
echo "agora: the trainer stopped after ${i}s"`, pids, wait)
}

// warmupSteps is the warm-up of h.WarmupRatio as a whole number of
// optimizer steps, rounded up: examples split into batches of
// per_device_batch_size on each of procs processes, gradient_accumulation_steps
// batches an optimizer step (at least one), for every epoch. Whole steps
// mean the same thing to every transformers version (warmup_ratio is gone
// from transformers 5, whose warmup_steps also takes a ratio).
func warmupSteps(h spec.Hyperparameters, examples, procs int) int {
	if h.WarmupRatio <= 0 || examples <= 0 {
		return 0
	}
	batches := ceilDiv(examples, max(h.PerDeviceBatchSize, 1)*max(procs, 1))
	perEpoch := max(batches/max(h.GradientAccumulationSteps, 1), 1)
	total := perEpoch * max(h.Epochs, 1)
	return int(math.Ceil(h.WarmupRatio * float64(total)))
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// renderSFTConfig writes TRL's SFTConfig (and model/data arguments) as
// YAML: the Table 6 hyperparameters under TRL's names (max_seq_length is
// TRL's max_length; dtype bfloat16 is bf16: true), the learning-rate
// schedule and warm-up steps, the data as a JSON dataset, loss on the
// completions only, no packing, one save at the end; use_cpu for a CPU
// job. Extra hyperparameters are added under their own names and
// override.
func renderSFTConfig(in trainInputs, data, out string, warmup int, cpu bool) string {
	h := in.Hyperparameters
	kv := map[string]any{
		"lr_scheduler_type":           cmp.Or(h.LRScheduler, "linear"),
		"warmup_steps":                warmup,
		"model_name_or_path":          in.Base,
		"datasets":                    []map[string]any{{"path": "json", "data_files": data, "split": "train"}},
		"output_dir":                  out,
		"num_train_epochs":            h.Epochs,
		"max_length":                  h.MaxSeqLength,
		"learning_rate":               h.LearningRate,
		"per_device_train_batch_size": h.PerDeviceBatchSize,
		"gradient_accumulation_steps": h.GradientAccumulationSteps,
		"seed":                        h.Seed,
		"bf16":                        h.DType == "bfloat16",
		"fp16":                        h.DType == "float16",
		"completion_only_loss":        true,
		"packing":                     false,
		"gradient_checkpointing":      true,
		"save_strategy":               "no",
		"save_only_model":             false, // a checkpoint resumes with its optimizer state
		"report_to":                   "none",
		"logging_steps":               10,
	}
	if cpu {
		kv["use_cpu"] = true
	}
	return renderYAML("# TRL SFT configuration, rendered by agora.\n", kv, h.Extra)
}

// renderAxolotlConfig writes axolotl's configuration: the Table 6
// hyperparameters under axolotl's names, the training set as a local JSON
// dataset of chat messages trained on the assistant turns only
// (roles_to_train, train_on_inputs: false), the base model's own chat
// template (ChatML when it has none), DeepSpeed ZeRO-3, no packing, and
// resumption from the newest checkpoint when a requeued job finds one.
// Extra hyperparameters are added under their own names and override.
func renderAxolotlConfig(in trainInputs, data, out, deepspeed string, warmup int) string {
	h := in.Hyperparameters
	kv := map[string]any{
		"lr_scheduler": cmp.Or(h.LRScheduler, "linear"),
		"warmup_steps": warmup,
		"base_model":   in.Base,
		"datasets": []map[string]any{{
			"path": data, "ds_type": "json", "type": "chat_template",
			"field_messages": "messages", "roles_to_train": []string{"assistant"},
		}},
		"chat_template":                "tokenizer_default_fallback_chatml",
		"dataset_prepared_path":        filepath.Join(filepath.Dir(out), "axolotl-prepared"),
		"output_dir":                   out,
		"sequence_len":                 h.MaxSeqLength,
		"sample_packing":               false,
		"num_epochs":                   h.Epochs,
		"micro_batch_size":             h.PerDeviceBatchSize,
		"gradient_accumulation_steps":  h.GradientAccumulationSteps,
		"learning_rate":                h.LearningRate,
		"optimizer":                    "adamw_torch",
		"train_on_inputs":              false,
		"seed":                         h.Seed,
		"bf16":                         h.DType == "bfloat16",
		"fp16":                         h.DType == "float16",
		"gradient_checkpointing":       true,
		"val_set_size":                 0,
		"auto_resume_from_checkpoints": true,
		"logging_steps":                10,
	}
	if deepspeed != "" {
		kv["deepspeed"] = deepspeed
	}
	return renderYAML("# axolotl configuration, rendered by agora.\n", kv, h.Extra)
}

// renderDeepSpeedZero3 is a DeepSpeed ZeRO-3 configuration whose sizes
// and precision follow the trainer's arguments ("auto").
func renderDeepSpeedZero3() string {
	return `{
  "zero_optimization": {
    "stage": 3,
    "overlap_comm": true,
    "contiguous_gradients": true,
    "stage3_gather_16bit_weights_on_model_save": true
  },
  "bf16": {"enabled": "auto"},
  "fp16": {"enabled": "auto"},
  "gradient_accumulation_steps": "auto",
  "gradient_clipping": "auto",
  "train_batch_size": "auto",
  "train_micro_batch_size_per_gpu": "auto",
  "wall_clock_breakdown": false
}
`
}

// renderYAML writes kv, then extra over it, as sorted YAML keys with
// flow-style values.
func renderYAML(header string, kv, extra map[string]any) string {
	for k, v := range extra {
		kv[k] = v
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(header)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\n", k, yamlValue(kv[k]))
	}
	return b.String()
}

// yamlValue writes v in YAML flow style (JSON is YAML).
func yamlValue(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return strconv.Quote(fmt.Sprint(v))
	}
	return string(b)
}

// renderCPUAccelerate is accelerate's configuration of a CPU job (student
// hardware gpus_per_node: 0): one process, no DeepSpeed, no mixed
// precision.
func renderCPUAccelerate() string {
	return `# accelerate configuration (one process on the CPU), rendered by agora.
compute_environment: LOCAL_MACHINE
distributed_type: "NO"
mixed_precision: "no"
num_machines: 1
num_processes: 1
use_cpu: true
`
}

// renderZero3 is accelerate's configuration for DeepSpeed ZeRO-3.
func renderZero3(h spec.Hyperparameters, gpus, nodes int) string {
	mp := "no"
	switch h.DType {
	case "bfloat16":
		mp = "bf16"
	case "float16":
		mp = "fp16"
	}
	return fmt.Sprintf(`# accelerate configuration (DeepSpeed ZeRO-3), rendered by agora.
compute_environment: LOCAL_MACHINE
distributed_type: DEEPSPEED
deepspeed_config:
  deepspeed_multinode_launcher: standard
  offload_optimizer_device: none
  offload_param_device: none
  zero3_init_flag: true
  zero3_save_16bit_model: true
  zero_stage: 3
machine_rank: 0
main_training_function: main
mixed_precision: %s
num_machines: %d
num_processes: %d
rdzv_backend: static
same_network: true
use_cpu: false
`, mp, nodes, gpus)
}

// passEnv returns the variables among names that are set, for a job's Env
// (their values never enter a script).
func passEnv(names ...string) map[string]string {
	env := map[string]string{}
	for _, n := range names {
		if v, ok := os.LookupEnv(n); ok {
			env[n] = v
		}
	}
	return env
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// shQuote quotes s for bash.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
