"""Write a tiny random-weight model and a tokenizer built on the spot.

Nothing is downloaded: the tokenizer is a byte-level BPE trained here on a
few lines of text, the model a Llama-architecture config of a few thousand
parameters with random weights (seeded), saved with save_pretrained in the
layout transformers, TRL, lm-eval and vLLM read (config.json,
model.safetensors, tokenizer.json, tokenizer_config.json with a chat
template).

usage: python tiny_model.py OUT_DIR {causal|reward}
"""
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (LlamaConfig, LlamaForCausalLM,
                          LlamaForSequenceClassification,
                          PreTrainedTokenizerFast)

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

CORPUS = [
    "What is 12 plus 30? The answer is 42. [RESULT] 42 [/RESULT]",
    "Write a Python function that returns the sum of a list.",
    "def add(a, b):\n    return a + b\n",
    "Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.",
    "The answer is \\boxed{7}. Natalia sold 48 clips in April. #### 72",
    "Give three tips for staying healthy. Eat well, sleep, exercise.",
    "0 1 2 3 4 5 6 7 8 9 + - * / = ( ) [ ] { } $ \\ ^ _ , . : ; ? ! ' \"",
]
SPECIALS = ["<s>", "</s>", "<pad>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]


def main(out, kind):
    torch.manual_seed(0)
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384, special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(CORPUS * 4, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="<|end|>",
        pad_token="<pad>", additional_special_tokens=SPECIALS[3:6],
        model_max_length=2048)
    tok.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=2048, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False)
    if kind == "reward":
        config.num_labels = 1
        model = LlamaForSequenceClassification(config)
    elif kind == "causal":
        model = LlamaForCausalLM(config)
    else:
        sys.exit(f"tiny_model.py: unknown kind {kind!r} (causal, reward)")
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
