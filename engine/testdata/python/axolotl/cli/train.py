"""Stand-in for `python -m axolotl.cli.train CONFIG`: reads the YAML agora
wrote, checks what agora promises in it (a chat-format JSON dataset
trained on the assistant turns only, DeepSpeed ZeRO-3), "trains" through
transformers' Trainer as axolotl does (AGORA_STANDIN_STEPS steps, default
4, taking AGORA_STANDIN_SLEEP seconds in all; with
auto_resume_from_checkpoints, from the newest checkpoint in output_dir),
and writes what a trained model's directory holds."""
import json
import os
import sys

import transformers
from transformers.trainer_utils import get_last_checkpoint


class Args:
    pass


def main():
    if len(sys.argv) != 2:
        sys.exit("axolotl stand-in: want CONFIG, got %r" % sys.argv[1:])
    cfg = {}
    with open(sys.argv[1]) as f:
        for line in f:
            if line.startswith("#") or ": " not in line:
                continue
            k, v = line.rstrip("\n").split(": ", 1)
            cfg[k] = json.loads(v)
    if cfg.get("train_on_inputs") is not False:
        sys.exit("axolotl stand-in: train_on_inputs is not false")
    ds = cfg["datasets"][0]
    if ds.get("type") != "chat_template" or ds.get("roles_to_train") != ["assistant"]:
        sys.exit("axolotl stand-in: dataset %r does not train on the assistant only" % ds)
    if "deepspeed" in cfg:  # no DeepSpeed on CPUs (gpus_per_node: 0)
        with open(cfg["deepspeed"]) as f:
            if json.load(f)["zero_optimization"]["stage"] != 3:
                sys.exit("axolotl stand-in: not ZeRO-3")
    lines = 0
    with open(ds["path"]) as f:
        for line in f:
            roles = [m["role"] for m in json.loads(line)["messages"]]
            if roles != ["user", "assistant"]:
                sys.exit("axolotl stand-in: roles %r" % roles)
            lines += 1
    out = cfg["output_dir"]
    os.makedirs(out, exist_ok=True)
    steps = int(os.environ.get("AGORA_STANDIN_STEPS") or 4)
    sleep = float(os.environ.get("AGORA_STANDIN_SLEEP") or 0)
    if sleep:
        print("axolotl stand-in: sleeping %gs" % sleep, flush=True)
    args = Args()
    args.output_dir = out
    trainer = transformers.Trainer(args, steps, sleep / steps)
    resume = get_last_checkpoint(out) if cfg.get("auto_resume_from_checkpoints") else None
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(out)
    with open(os.path.join(out, "train_lines.txt"), "w") as f:
        f.write("%d\n" % lines)
    print("axolotl stand-in: trained %d examples of %s into %s" % (lines, cfg["base_model"], out), flush=True)


if __name__ == "__main__":
    main()
