"""Stand-in for transformers.trainer_utils.get_last_checkpoint."""
import os
import re


def get_last_checkpoint(folder):
    found = []
    for name in os.listdir(folder):
        m = re.fullmatch(r"checkpoint-(\d+)", name)
        if m and os.path.isdir(os.path.join(folder, name)):
            found.append((int(m.group(1)), name))
    if not found:
        return None
    return os.path.join(folder, max(found)[1])
