"""Judges one function's answer to one sample event against events/expected.json, the
exact outcome every runner must produce (make lambda-check through cargo lambda, and
sam local invoke): an HTTP status, "Unauthorized" for the authorizer's refusal, or an
object whose fields must all appear in the answer.
Usage: expect_event.py FUNCTION EVENT_FILE < ANSWER  → prints "ok (...)" or "FAIL (...)".
(The answer comes on stdin: a page or a script can be larger than an argument may be.)
"""

import json
import sys
from pathlib import Path

EXPECTED = json.loads((Path(__file__).resolve().parents[2] / "events" / "expected.json").read_text())


def judge(fn, file, out):
    key = f"{fn}/{Path(file).name}"
    if key not in EXPECTED:
        return f"FAIL (no expectation for {key} in events/expected.json)"
    want = EXPECTED[key]
    try:
        value = json.loads(out)
    except ValueError:
        value = None
    if want == "Unauthorized":
        return "ok (Unauthorized)" if "Unauthorized" in out else f"FAIL (want Unauthorized)"
    if isinstance(want, int):
        got = value.get("statusCode") if isinstance(value, dict) else None
        return f"ok ({got})" if got == want else f"FAIL (got {got}, want {want})"
    if isinstance(value, dict) and "errorType" not in value:
        missing = {k: v for k, v in want.items() if value.get(k) != v}
        return f"ok {json.dumps(want)}" if not missing else f"FAIL (want {json.dumps(missing)})"
    return f"FAIL (want {json.dumps(want)})"


if __name__ == "__main__":
    print(judge(sys.argv[1], sys.argv[2], sys.stdin.read()))
