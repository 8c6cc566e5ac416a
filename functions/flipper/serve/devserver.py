"""`make dev-server`: uvicorn serving the app, over an embedded fakeredis store when REDIS_URL is unset."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette

from flipper.core import devstore
from flipper.core.settings import Settings, SettingsError, without_password
from flipper.core.store import Store
from flipper.serve.app import create_app

logger = logging.getLogger("flipper")

EMBEDDED_HOST = "127.0.0.1"
EMBEDDED_PORT = 6379  # Redis's own port, so a bare `redis-cli` reaches the embedded store


def start_embedded_store(port: int = EMBEDDED_PORT) -> str:
    """Serve an in-process fakeredis over TCP, like a Redis server; return its URL.

    Falls back to a free port when `port` is taken (by a real Redis, say); `announce` then says so loudly.
    """
    from fakeredis import TcpFakeServer  # a development dependency: imported only when used

    try:
        server = TcpFakeServer((EMBEDDED_HOST, port), server_version=(7, 0))
    except OSError:
        server = TcpFakeServer((EMBEDDED_HOST, 0), server_version=(7, 0))
    server.daemon_threads = True  # client threads must not keep the process alive at exit
    threading.Thread(target=server.serve_forever, name="embedded-store", daemon=True).start()
    return f"redis://{EMBEDDED_HOST}:{server.server_address[1]}"


def announce(url: str, wanted_port: int) -> None:
    """Say where the embedded store listens; loudly, with the commands to use, when not on `wanted_port`:
    a plain `redis-cli` would write to whatever holds that port, and the dev server would not see it."""
    logger.info("embedded store (fakeredis) listening on %s; REDIS_URL is not set; in memory only", url)
    port = urlsplit(url).port
    if port != wanted_port:
        logger.warning(
            "port %d is taken (by another Redis?), so the embedded store is on %d: plain redis-cli writes go to "
            "the other one. Write flags with: redis-cli -p %d SADD version:v1:positive feature_A. "
            "Or serve from the Redis on %d instead: REDIS_URL=redis://%s:%d make dev-server",
            *(wanted_port, port, port, wanted_port, EMBEDDED_HOST, wanted_port),
        )


def create() -> Starlette:
    """The uvicorn factory: settings from the environment, one store, one app."""
    settings = Settings.from_environ()
    return create_app(Store.from_settings(settings), settings)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="flipper.serve.devserver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--reload", action="store_true", help="restart when the code changes")
    parser.add_argument("--store-port", type=int, default=EMBEDDED_PORT, help="the embedded store's port, if free")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_environ()
    except SettingsError as exc:
        sys.exit(f"flipper: {exc}")
    logging.basicConfig(level=settings.log_level, format="%(levelname)s:     %(message)s")
    embedded = None
    if settings.redis_url is None:
        # Set for the factory, which may run in a reloader's child process.
        embedded = os.environ["REDIS_URL"] = start_embedded_store(args.store_port)
        announce(embedded, args.store_port)
        devstore.record(embedded)  # so that the flipper command finds it
    else:
        logger.info("using Redis at %s", without_password(settings.redis_url))
    # uvicorn re-raises the SIGTERM it stopped on once it has shut down: exit through Python, not the default
    # action, so that `finally` runs (Ctrl-C already does, as KeyboardInterrupt).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        uvicorn.run(
            "flipper.serve.devserver:create",
            factory=True,
            host=args.host,
            port=args.port,
            reload=args.reload,
            reload_dirs=[os.path.dirname(os.path.dirname(__file__))] if args.reload else None,
            log_level=settings.log_level.lower(),
            # A line per request costs about a sixth of an evaluation's CPU (docs/performance.md): DEBUG only.
            access_log=settings.log_level == "DEBUG",
        )
    finally:
        if embedded is not None:
            devstore.forget(embedded)


if __name__ == "__main__":
    main()
