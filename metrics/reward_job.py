"""agora's built-in reward job (docs/metrics.md, "Reward model").

    python3 agora_reward.py --model MODEL --data reward-input.jsonl --output rewards.jsonl

Scores every item of --data (one {"index", "instruction", "response"} a
line) with a sequence-classification reward model loaded by transformers'
AutoModelForSequenceClassification: the item is laid out as a user turn and
an assistant turn with the model's own chat template, tokenized without
adding special tokens again (the template writes them), and the score is the
model's single logit at the last token that is not padding. The output has
one {"index": i, "score": x} a line and appears whole or not at all.

MODEL is a local directory or a hub id (read from the hub's cache, which is
all a compute node without internet has: agora sets HF_HUB_OFFLINE and
HF_HOME when the spec names an offline cache). GPUs when there are any (the
model spread over them, in bfloat16 unless --dtype says otherwise), else the
CPU in float32. Errors go to stderr with exit status 1.
"""

import argparse
import json
import math
import os
import sys


def fail(msg):
    print(f"agora_reward: {msg}", file=sys.stderr)
    sys.exit(1)


def read_items(path):
    items = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                it = json.loads(line)
                items.append((int(it["index"]), str(it["instruction"]), str(it["response"])))
            except (ValueError, KeyError, TypeError) as e:
                fail(f"{path}:{n}: not an item with index, instruction and response: {e}")
    return items


def main():
    ap = argparse.ArgumentParser(description="agora's built-in reward job")
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=0,
                    help="tokens kept per item, the last ones (default: the model's context)")
    ap.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float16", "float32"])
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    items = read_items(args.data)
    cuda = torch.cuda.is_available()
    dtype = {"auto": torch.bfloat16 if cuda else torch.float32, "bfloat16": torch.bfloat16,
             "float16": torch.float16, "float32": torch.float32}[args.dtype]
    try:
        tok = AutoTokenizer.from_pretrained(args.model)
        kw = {"device_map": "auto"} if cuda else {}
        # transformers 5 calls the argument dtype; 4.x called it torch_dtype.
        model = AutoModelForSequenceClassification.from_pretrained(args.model, dtype=dtype, **kw)
    except (OSError, ValueError) as e:
        fail(f"cannot load reward model {args.model}: {e}")
    model.eval()
    if model.config.num_labels != 1:
        fail(f"{args.model} has {model.config.num_labels} labels: a reward model has one (a scalar score)")
    if not getattr(tok, "chat_template", None):
        fail(f"{args.model}'s tokenizer has no chat template: agora lays items out as a conversation")

    pad = model.config.pad_token_id
    if pad is None and tok.pad_token_id is not None:
        model.config.pad_token_id = pad = tok.pad_token_id
    batch = args.batch_size if pad is not None else 1  # without padding the model reads one item at a time
    limit = args.max_length or min(
        x for x in (tok.model_max_length, getattr(model.config, "max_position_embeddings", None), 1 << 20)
        if isinstance(x, int) and x > 0)

    encoded, truncated = [], 0
    for idx, instruction, response in items:
        conv = [{"role": "user", "content": instruction}, {"role": "assistant", "content": response}]
        # The template's text, then its tokens: apply_chat_template(tokenize=True)
        # returns a list in transformers 4 and a BatchEncoding in 5.
        text = tok.apply_chat_template(conv, tokenize=False)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if len(ids) > limit:
            # The score is read at the last token: keep the end.
            ids, truncated = ids[-limit:], truncated + 1
        encoded.append((idx, ids))
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][1]))

    device = next(model.parameters()).device
    scores = {}
    with torch.no_grad():
        for start in range(0, len(order), batch):
            part = [encoded[i] for i in order[start:start + batch]]
            width = max(len(ids) for _, ids in part)
            fill = pad if pad is not None else 0
            input_ids = torch.tensor([ids + [fill] * (width - len(ids)) for _, ids in part], device=device)
            mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for _, ids in part], device=device)
            logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
            for (idx, _), x in zip(part, logits[:, 0].tolist()):
                if not math.isfinite(x):
                    fail(f"item {idx}: score {x} is not a finite number")
                scores[idx] = x

    tmp = args.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        for idx, _, _ in items:
            out.write(json.dumps({"index": idx, "score": scores[idx]}) + "\n")
    os.replace(tmp, args.output)
    print(f"agora_reward: scored {len(items)} items with {args.model}"
          f" ({truncated} cut to their last {limit} tokens)", file=sys.stderr)


if __name__ == "__main__":
    main()
