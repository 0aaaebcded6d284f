#!/usr/bin/env python3
# agora's launcher for a trainer's own entry point, written by agora into
# a train step's run directory as agora_train.py and started once per GPU
# by `accelerate launch`:
#
#   agora_train.py trl.scripts.sft --config sft.yaml     (TRL: `trl sft`)
#   agora_train.py axolotl.cli.train axolotl.yaml        (axolotl)
#
# It runs the module unchanged, with the arguments after its name, and
# adds two things to transformers' Trainer, which both trainers use:
#
#   resume   when output_dir already holds checkpoint-N directories (the
#            job was requeued), training resumes from the newest one
#            (axolotl finds it itself with auto_resume_from_checkpoints);
#   SIGUSR1  asks for a checkpoint: at the end of the current optimizer
#            step (agreed across ranks, so every rank saves the same step)
#            the trainer saves a full checkpoint and stops, and the
#            process exits with status 75 without writing a final model.
#            The job's USR1 trap (Slurm's --signal=B:USR1@N) sends it,
#            waits for the save, then requeues the job.
#
# Each process writes its pid to agora_train.<local rank>.pid beside this
# file, for the trap. After a normal end, rank 0 removes the checkpoints.
import glob
import os
import runpy
import shutil
import signal
import sys

CHECKPOINTED = 75  # exit status after a checkpoint asked for by SIGUSR1

asked = False


def on_usr1(signum, frame):
    global asked
    asked = True


def agreed(flag):
    """True on every rank when any rank was signalled."""
    try:
        import torch
        import torch.distributed as dist
    except ImportError:
        return flag
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    if torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    rank = os.environ.get("LOCAL_RANK", "0")
    if len(sys.argv) < 2:
        sys.exit("agora_train.py: want MODULE [ARGS...]")
    module, args = sys.argv[1], sys.argv[2:]
    # The handler first: a USR1 sent as soon as the pid file appears must
    # not find the default action, which ends the process.
    signal.signal(signal.SIGUSR1, on_usr1)
    with open(os.path.join(here, "agora_train.%s.pid" % rank), "w") as f:
        f.write("%d\n" % os.getpid())

    import transformers
    from transformers.trainer_utils import get_last_checkpoint

    class CheckpointOnSignal(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if agreed(asked):
                control.should_save = True
                control.should_training_stop = True
            return control

    train = transformers.Trainer.train

    def train_resuming(self, resume_from_checkpoint=None, *args, **kwargs):
        out_dir = self.args.output_dir
        if resume_from_checkpoint is None and out_dir and os.path.isdir(out_dir):
            resume_from_checkpoint = get_last_checkpoint(out_dir)
        if resume_from_checkpoint:
            print("agora: resuming from %s" % resume_from_checkpoint, flush=True)
        self.add_callback(CheckpointOnSignal())
        result = train(self, resume_from_checkpoint, *args, **kwargs)
        if asked:
            print("agora: checkpoint saved on SIGUSR1; exiting for the requeue", flush=True)
            sys.exit(CHECKPOINTED)
        return result

    transformers.Trainer.train = train_resuming

    sys.argv = [module] + args
    runpy.run_module(module, run_name="__main__", alter_sys=True)

    if os.environ.get("RANK", "0") == "0":
        out_dir = output_dir(args)
        for ckpt in glob.glob(os.path.join(out_dir, "checkpoint-*")) if out_dir else []:
            shutil.rmtree(ckpt, ignore_errors=True)


def output_dir(argv):
    """output_dir from --output_dir, or from the YAML agora wrote (TRL's
    --config FILE, axolotl's positional FILE), where every value is JSON."""
    configs = []
    for i, a in enumerate(argv):
        if a == "--output_dir" and i + 1 < len(argv):
            return argv[i + 1]
        if a == "--config" and i + 1 < len(argv):
            configs.append(argv[i + 1])
        elif a.endswith((".yaml", ".yml")) and (i == 0 or argv[i - 1] != "--config"):
            configs.append(a)
    for path in configs:
        import json
        with open(path) as f:
            for line in f:
                if line.startswith("output_dir: "):
                    return json.loads(line[len("output_dir: "):])
    return None


if __name__ == "__main__":
    main()
