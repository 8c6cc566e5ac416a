"""The Lambda path, measured in a process of its own: the handler's import time and its warm time per event.

`python -m bench.handler QUERY` with REDIS_URL set prints JSON: `import_ms` (importing flipper.handler,
which builds settings, store and app: a cold start's own work, bytecode cached) and `warm_us` (median µs
per API Gateway HTTP API (v2) event over the warm invocations, metrics flush included).
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import sys
import time
from urllib.parse import parse_qsl

from tests.lambda_events import LambdaContext, request_event

WARMUP = 200
ROUNDS = 5
PER_ROUND = 400


def main(query: str) -> None:
    started = time.perf_counter()
    from flipper import handler

    import_ms = (time.perf_counter() - started) * 1000
    event, context = request_event("http-api", "/", parse_qsl(query)), LambdaContext()
    per_event = []
    # The EMF metrics go to stdout, as in Lambda; here they are dropped so only the timings are printed.
    with contextlib.redirect_stdout(io.StringIO()) as sink:
        for _ in range(WARMUP):
            assert handler.handler(event, context)["statusCode"] == 200
        for _ in range(ROUNDS):
            sink.seek(0)
            sink.truncate()
            started = time.perf_counter()
            for _ in range(PER_ROUND):
                handler.handler(event, context)
            per_event.append((time.perf_counter() - started) / PER_ROUND * 1e6)
    print(json.dumps({"import_ms": import_ms, "warm_us": statistics.median(per_event)}))


if __name__ == "__main__":
    main(sys.argv[1])
