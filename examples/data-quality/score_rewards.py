"""Score instruction-response pairs with a sequence-classification reward
model, for agora's reward metric (docs/metrics.md).

    python score_rewards.py --model MODEL --data reward-input.jsonl --out rewards.jsonl

Reads agora's input (one {"index", "instruction", "response"} a line) and
writes one {"index": i, "score": x} a line: the model's scalar output for
the pair laid out as a user turn and an assistant turn with the model's
chat template. Needs torch and transformers; uses the GPUs it is given.
"""

import argparse
import json
import math
import os

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-length", type=int, default=4096)
    args = ap.parse_args()

    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model, torch_dtype=torch.bfloat16, device_map="auto", num_labels=1
    )
    model.eval()

    tmp = args.out + ".tmp"
    with open(args.data) as src, open(tmp, "w") as dst:
        for line in src:
            if not line.strip():
                continue
            item = json.loads(line)
            conv = [
                {"role": "user", "content": item["instruction"]},
                {"role": "assistant", "content": item["response"]},
            ]
            ids = tok.apply_chat_template(conv, tokenize=True, return_tensors="pt")
            ids = ids[:, -args.max_length :].to(model.device)
            with torch.no_grad():
                score = model(ids).logits[0][0].float().item()
            if not math.isfinite(score):
                raise SystemExit(f"item {item['index']}: score {score} is not finite")
            dst.write(json.dumps({"index": item["index"], "score": score}) + "\n")
    # The output appears whole or not at all.
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
