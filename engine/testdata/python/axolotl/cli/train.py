"""Stand-in for `python -m axolotl.cli.train CONFIG`: reads the YAML agora
wrote, checks what agora promises in it (a chat-format JSON dataset
trained on the assistant turns only, DeepSpeed ZeRO-3), and writes what a
trained model's directory holds."""
import json
import os
import sys


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
    for name, body in (("config.json", '{"model_type": "llama"}\n'), ("model.safetensors", "weights"),
                       ("tokenizer_config.json", "{}\n"), ("tokenizer.json", "{}\n"),
                       ("train_lines.txt", "%d\n" % lines)):
        with open(os.path.join(out, name), "w") as f:
            f.write(body)
    print("axolotl stand-in: trained %d examples of %s into %s" % (lines, cfg["base_model"], out), flush=True)


if __name__ == "__main__":
    main()
