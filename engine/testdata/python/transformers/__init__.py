"""Stand-in for the parts of transformers that agora's TRL launcher and
the trl stand-in use: Trainer (train, add_callback, save_model),
TrainerCallback and the control flags. A "step" sleeps; checkpoints are
directories checkpoint-N holding trainer_state.json."""
import json
import os
import time


class TrainerControl:
    def __init__(self):
        self.should_save = False
        self.should_training_stop = False


class TrainerState:
    def __init__(self):
        self.global_step = 0


class TrainerCallback:
    def on_step_end(self, args, state, control, **kwargs):
        return control


class Trainer:
    def __init__(self, args, steps, step_seconds=0.0):
        self.args = args
        self.steps = steps
        self.step_seconds = step_seconds
        self.callbacks = []

    def add_callback(self, cb):
        self.callbacks.append(cb)

    def train(self, resume_from_checkpoint=None):
        state = TrainerState()
        if resume_from_checkpoint:
            with open(os.path.join(resume_from_checkpoint, "trainer_state.json")) as f:
                state.global_step = json.load(f)["global_step"]
            print("stand-in trainer: resumed at step %d" % state.global_step, flush=True)
        while state.global_step < self.steps:
            time.sleep(self.step_seconds)
            state.global_step += 1
            control = TrainerControl()
            for cb in self.callbacks:
                control = cb.on_step_end(self.args, state, control) or control
            if control.should_save:
                ckpt = os.path.join(self.args.output_dir, "checkpoint-%d" % state.global_step)
                os.makedirs(ckpt, exist_ok=True)
                with open(os.path.join(ckpt, "trainer_state.json"), "w") as f:
                    json.dump({"global_step": state.global_step}, f)
                print("stand-in trainer: saved %s" % ckpt, flush=True)
            if control.should_training_stop:
                break
        print("stand-in trainer: stopped at step %d of %d" % (state.global_step, self.steps), flush=True)
        return state

    def save_model(self, out):
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "config.json"), "w") as f:
            f.write('{"architectures": ["LlamaForCausalLM"], "model_type": "llama"}\n')
        with open(os.path.join(out, "model.safetensors"), "w") as f:
            f.write("weights")
        for name in ("tokenizer_config.json", "tokenizer.json"):
            with open(os.path.join(out, name), "w") as f:
                f.write("{}\n")
