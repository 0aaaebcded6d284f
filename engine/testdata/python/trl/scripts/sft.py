"""Stand-in for TRL's SFT script (`trl sft --config sft.yaml`): reads the
YAML agora wrote, checks what agora promises in it, "trains" for
AGORA_STANDIN_STEPS steps (default 4) taking AGORA_STANDIN_SLEEP seconds
in all, and saves the model.

AGORA_STANDIN_FAIL_ONCE=FILE: fail (exit 1) when FILE does not exist yet,
creating it."""
import json
import os
import sys

import transformers


class Args:
    pass


def main():
    argv = sys.argv[1:]
    if len(argv) != 2 or argv[0] != "--config":
        sys.exit("trl stand-in: want --config FILE, got %r" % argv)
    cfg = {}
    with open(argv[1]) as f:
        for line in f:
            if line.startswith("#") or ": " not in line:
                continue
            k, v = line.rstrip("\n").split(": ", 1)
            cfg[k] = json.loads(v)
    for key, want in (("completion_only_loss", True), ("save_only_model", False)):
        if cfg.get(key) != want:
            sys.exit("trl stand-in: %s is %r, want %r" % (key, cfg.get(key), want))
    if not cfg.get("model_name_or_path"):
        sys.exit("trl stand-in: no model_name_or_path")
    fail_once = os.environ.get("AGORA_STANDIN_FAIL_ONCE")
    if fail_once and not os.path.exists(fail_once):
        open(fail_once, "w").close()
        sys.exit("trl stand-in: CUDA out of memory (injected failure)")
    data = cfg["datasets"][0]["data_files"]
    with open(data) as f:
        lines = sum(1 for _ in f)
    if lines == 0:
        sys.exit("trl stand-in: no data at %s" % data)
    steps = int(os.environ.get("AGORA_STANDIN_STEPS") or 4)
    sleep = float(os.environ.get("AGORA_STANDIN_SLEEP") or 0)
    if sleep:
        print("trl stand-in: sleeping %gs" % sleep, flush=True)
    args = Args()
    args.output_dir = cfg["output_dir"]
    trainer = transformers.Trainer(args, steps, sleep / steps)
    trainer.train()
    trainer.save_model(args.output_dir)
    with open(os.path.join(args.output_dir, "train_lines.txt"), "w") as f:
        f.write("%d\n" % lines)
    print("trl stand-in: trained %d examples into %s" % (lines, args.output_dir), flush=True)


if __name__ == "__main__":
    main()
