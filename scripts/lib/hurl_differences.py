"""Copies the hurl suites with the assertions that SAM's local emulation cannot meet taken
out, exactly where tests/sam-local-differences.json lists them (and nowhere else). Each
entry names a file, a request line (and which occurrence of it), and either a status the
emulator answers instead ("status") or assertion lines it cannot satisfy ("drop"), with the
reason and what API Gateway does. The full suites still run against our own gateway in
`make test`, which is the check that it keeps doing the AWS thing at those requests.
A listed entry that matches nothing fails the run: the list cannot go stale.
Usage: hurl_differences.py DIFFERENCES SRC_DIR DST_DIR
"""

import json
import re
import shutil
import sys
from pathlib import Path

REQUEST = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) ")


def apply(lines, entry):
    starts = [i for i, l in enumerate(lines) if l.strip() == entry["request"]]
    n = entry.get("occurrence", 1)
    if len(starts) < n:
        raise SystemExit(f"sam-local differences: {entry['file']}: request {entry['request']!r} #{n} not found")
    start = starts[n - 1]
    end = next((i for i in range(start + 1, len(lines)) if REQUEST.match(lines[i])), len(lines))
    block = lines[start:end]
    if "status" in entry:
        idx = next((i for i, l in enumerate(block) if l.startswith("HTTP ")), None)
        if idx is None:
            raise SystemExit(f"sam-local differences: {entry['file']}: no HTTP line after {entry['request']!r}")
        block[idx] = f"HTTP {entry['status']}\n"
    for drop in entry.get("drop", []):
        hits = [i for i, l in enumerate(block) if l.strip() == drop]
        if not hits:
            raise SystemExit(f"sam-local differences: {entry['file']}: {drop!r} not under {entry['request']!r}")
        for i in reversed(hits):
            del block[i]
    lines[start:end] = block


def main(differences, src, dst):
    entries = json.loads(Path(differences).read_text())
    dst = Path(dst)
    shutil.copytree(src, dst, dirs_exist_ok=True)
    for entry in entries:
        for key in ("file", "request", "reason", "aws"):
            if not entry.get(key):
                raise SystemExit(f"sam-local differences: an entry lacks {key!r}: {entry}")
        path = dst / entry["file"]
        lines = path.read_text().splitlines(keepends=True)
        apply(lines, entry)
        path.write_text("".join(lines))


if __name__ == "__main__":
    main(*sys.argv[1:4])
