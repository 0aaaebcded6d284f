"""Asks an OpenAI-compatible chat API "What is K + K?" for K = 1..N and
prints the share of answers that hold the right sum.

argv: chat completions URL (or a base URL ending in /v1), model, N. The
key comes from OPENAI_API_KEY. Used by the stand-in harnesses of solve
steps; a request that fails makes the script exit 1 with the error.
"""
import json
import os
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

url, model, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if not url.endswith("/chat/completions"):
    url = url.rstrip("/") + "/chat/completions"
key = os.environ["OPENAI_API_KEY"]


def ask(k):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": f"What is {k} + {k}?"}],
                       "temperature": 0.0, "max_tokens": 64}).encode()
    req = urllib.request.Request(url, data=body, headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            answer = json.load(r)["choices"][0]["message"]["content"]
    except urllib.error.HTTPError as e:
        sys.exit(f"ask.py: HTTP {e.code}: {e.read().decode()}")
    return str(2 * k) in answer.split()


with ThreadPoolExecutor(4) as pool:
    right = sum(pool.map(ask, range(1, n + 1)))
print(right / n)
