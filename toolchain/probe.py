"""agora's toolchain probe: what the environment of a job offers.

usage: python3 probe.py REQUEST_JSON

REQUEST_JSON: {"commands": [NAME, ...], "dists": [NAME, ...],
"imports": {DIST: MODULE, ...}}. Prints one JSON object:

  {"python": VERSION, "executable": PATH, "host": NAME,
   "commands": {NAME: {"path": PATH, "python": INTERPRETER} | null},
   "dists": {NAME: {"version": V, "error": MSG} | null}}

A distribution is looked up in the interpreter of the commands that use
it (their shebang: a tool installed in a virtual environment runs with
that environment's Python) and else in this interpreter; its module is
imported there, so a broken install (a missing dependency) is an error.
"""
import json
import os
import shutil
import socket
import subprocess
import sys

LOOKUP = r"""
import importlib, importlib.metadata as md, json, sys
req = json.loads(sys.argv[1])
out = {}
for dist in req["dists"]:
    try:
        v = md.version(dist)
    except md.PackageNotFoundError:
        out[dist] = None
        continue
    entry = {"version": v}
    mod = req["imports"].get(dist)
    if mod:
        try:
            importlib.import_module(mod)
        except BaseException as e:
            entry["error"] = "import %s: %s: %s" % (mod, type(e).__name__, str(e).splitlines()[0] if str(e) else "")
    out[dist] = entry
print(json.dumps(out))
"""


def shebang_python(path):
    try:
        with open(path, "rb") as f:
            first = f.readline(512).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    parts = first[2:].split()
    if not parts:
        return None
    if os.path.basename(parts[0]) == "env" and len(parts) > 1:
        return shutil.which(parts[1])
    if "python" in os.path.basename(parts[0]):
        return parts[0]
    return None


def main():
    req = json.loads(sys.argv[1])
    commands = {}
    interpreters = []
    for name in req.get("commands", []):
        path = shutil.which(name)
        if path is None:
            commands[name] = None
            continue
        py = shebang_python(path)
        commands[name] = {"path": path, "python": py}
        if py and py not in interpreters:
            interpreters.append(py)
    if sys.executable not in interpreters:
        interpreters.append(sys.executable)
    dists = {d: None for d in req.get("dists", [])}
    # The first interpreter that has a distribution wins: the commands'
    # environments before this one.
    for py in interpreters:
        missing = [d for d, v in dists.items() if v is None]
        if not missing:
            break
        try:
            res = subprocess.run([py, "-c", LOOKUP, json.dumps({"dists": missing, "imports": req.get("imports", {})})],
                                 capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if res.returncode != 0:
            continue
        try:
            found = json.loads(res.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            continue
        for d, v in found.items():
            if v is not None:
                v["python"] = py
                dists[d] = v
    print(json.dumps({
        "python": "%d.%d.%d" % sys.version_info[:3],
        "executable": sys.executable,
        "host": socket.gethostname(),
        "commands": commands,
        "dists": dists,
    }))


if __name__ == "__main__":
    main()
