"""`make invoke EVENT=tests/events/http-api.json`: the built artifact's handler on one event, without Docker.

What `sam local invoke` does, on this machine's Python: a fresh interpreter whose `sys.path` holds the
standard library and the artifact alone (`PYTHONPATH`, `-S`: no site-packages), so it imports what Lambda
would. The response JSON goes to stdout; the function's logs and metrics go to stderr. The store is
`REDIS_URL`'s, else a running `make dev-server`'s embedded store (its flags), else a fresh embedded one.
Not shipped in the artifact: it needs fakeredis, a development dependency.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from flipper.core import devstore
from flipper.serve.devserver import start_embedded_store

ARTIFACT = Path(".aws-sam") / "build" / "FlipperFunction"
# template.yaml's Globals that matter off AWS; tracing off, as there is no X-Ray daemon here.
DEFAULTS = {
    "POWERTOOLS_SERVICE_NAME": "flipper",
    "POWERTOOLS_METRICS_NAMESPACE": "Flipper",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "LOG_LEVEL": "INFO",
}

# Runs in the artifact's interpreter. The function prints its logs and metrics to stdout, as on Lambda;
# here they go to stderr (the logger takes its stream at import), so that stdout is the response alone.
CHILD = """
import json, sys
event = json.load(sys.stdin)
response_out, sys.stdout = sys.stdout, sys.stderr

class Context:
    function_name = "FlipperFunction"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:FlipperFunction"
    memory_limit_in_mb = 512
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/FlipperFunction"
    log_stream_name = "local"

    def get_remaining_time_in_millis(self):
        return 30000

from flipper import handler

json.dump(handler.handler(event, Context()), response_out)
response_out.write("\\n")
"""


def store_url() -> str:
    """The store the function reads, said on stderr, as the dev server says its own."""
    url = os.environ.get("REDIS_URL") or devstore.recorded_url()
    if url is None:
        url = start_embedded_store(0)
        print(f"invoke: REDIS_URL is not set and no dev server runs: a fresh embedded store at {url}", file=sys.stderr)
    return url


def invoke(event: Path, artifact: Path = ARTIFACT, python: str = sys.executable) -> int:
    if not (artifact / "flipper" / "handler.py").exists():
        sys.exit(f"invoke: {artifact} holds no flipper/handler.py: run `make build` first")
    environ = DEFAULTS | os.environ | {"PYTHONPATH": str(artifact.resolve()), "REDIS_URL": store_url()}
    # -S: no site-packages; -P: not the current directory either. The artifact and the standard library only.
    child = subprocess.run(
        [python, "-S", "-P", "-c", CHILD], input=event.read_text(encoding="utf-8"), env=environ, text=True
    )
    return child.returncode


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="flipper.serve.devinvoke", description=__doc__.splitlines()[0])
    parser.add_argument("event", type=Path, help="an event file, e.g. tests/events/http-api.json")
    parser.add_argument("--artifact", type=Path, default=ARTIFACT, help="sam build's FlipperFunction directory")
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs the artifact")
    args = parser.parse_args(argv)
    sys.exit(invoke(args.event, args.artifact, args.python))


if __name__ == "__main__":
    main()
