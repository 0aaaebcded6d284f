"""agora's MATH scoring for lm-evaluation-harness (task group agora_math).

The task is minerva_math's problems, prompt and few-shot exemplars, scored
by mathematical equivalence (math-verify) of the answer the model gives,
in whatever form it gives it:

- the last "[RESULT] ... [/RESULT]" (or an unclosed "[RESULT] ..." at the
  end), the form of the answers in agora's generated data, is the answer:
  its content is read as a boxed LaTeX expression, then, if that reads as
  nothing, as a plain expression;
- otherwise math-verify reads the whole response as it does by default:
  the last \\boxed{} (several boxes read as a set), "final answer is ...",
  "answer: ...", the last LaTeX expression, the last number.

The gold answer is math-verify's reading of the reference solution (its
\\boxed{}), as in lm-eval's own math_verify metric. This file is written
by agora into the evaluation's run directory and named with
--include_path; see harness/doc.go and docs/evaluation.md.
"""
import ast
import importlib.util
import os
import re

from math_verify import parse, verify

_RESULT = re.compile(r"\[RESULT\](.*?)(?:\[/RESULT\]|$)", re.S)
_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def doc_to_text(doc):
    return "Problem:\n" + doc["problem"] + "\n\nSolution:"


def _result(response):
    """The content of the last [RESULT] block, or None."""
    found = _RESULT.findall(response)
    if not found:
        return None
    inner = found[-1].strip().rstrip(".").strip()
    for left, right in _DELIMS:
        if len(inner) > len(left) + len(right) and inner.startswith(left) and inner.endswith(right):
            inner = inner[len(left):-len(right)].strip()
            break
    return inner


def extract(response):
    """math-verify's reading of the answer in a response (a list, empty
    when no answer is found)."""
    inner = _result(response)
    if inner is None:
        return parse(response)
    if not inner:
        return []
    if "\\boxed" in inner:
        return parse(inner)
    return parse("$\\boxed{" + inner + "}$") or parse(inner)


def process_results(doc, results):
    gold = parse(doc["solution"])
    return {"math_verify": 1 if verify(gold=gold, target=extract(results[0])) else 0}


def list_fewshot_samples():
    """minerva_math's four exemplars, read from the installed lm-eval
    without importing its module (which insists on antlr4 4.11)."""
    spec = importlib.util.find_spec("lm_eval")
    path = os.path.join(os.path.dirname(spec.origin), "tasks", "minerva_math", "utils.py")
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "list_fewshot_samples":
            for stmt in node.body:
                if isinstance(stmt, ast.Return):
                    return ast.literal_eval(stmt.value)
    raise RuntimeError(f"no list_fewshot_samples in {path}")
