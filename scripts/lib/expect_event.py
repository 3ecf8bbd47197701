"""Judges one function's answer to one sample event against events/expected.json, the
exact outcome every runner must produce (make lambda-check through cargo lambda, and
sam local invoke): an HTTP status, "Unauthorized" for the authorizer's refusal, an object
whose fields must all appear in the answer, or {"streamed": PREFIX} for a function that
streams its response (what its body starts with).
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
    if isinstance(want, dict) and "streamed" in want:
        return judge_streamed(want, out)
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


def judge_streamed(want, out):
    """A streamed answer (Lambda response streaming): the body as it arrived, after the
    runtime's JSON prelude (status, headers) and its eight NUL bytes when the runner shows
    them, must start with `streamed`; a prelude, when present, must carry `status`."""
    separator = "\x00" * 8
    status = None
    if separator in out:
        prelude, body = out.split(separator, 1)
        try:
            status = json.loads(prelude[prelude.index("{"):]).get("statusCode")
        except ValueError:
            return "FAIL (an unreadable prelude)"
    else:
        # A shell's command substitution drops the NUL bytes: the prelude then runs straight
        # into the body.
        body = out.lstrip()
        if body.startswith("{"):
            try:
                prelude, end = json.JSONDecoder().raw_decode(body)
            except ValueError:
                prelude, end = None, 0
            if isinstance(prelude, dict) and "statusCode" in prelude:
                status, body = prelude["statusCode"], body[end:]
    if status is not None:
        if status != want.get("status", 200):
            return f"FAIL (got {status}, want {want.get('status', 200)})"
    if not body.lstrip().startswith(want["streamed"]):
        return f"FAIL (the streamed body does not start with {want['streamed']!r})"
    return f"ok (streamed, {len(body)} bytes)"


if __name__ == "__main__":
    print(judge(sys.argv[1], sys.argv[2], sys.stdin.read()))
