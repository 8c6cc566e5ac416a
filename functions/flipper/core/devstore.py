"""Where `make dev-server`'s embedded store listens, so that other commands (the `flipper` CLI) find it
without guessing: the dev server records the store's URL in a per-user file while it runs.

The file is `$XDG_RUNTIME_DIR/flipper-dev-store` (a per-user directory emptied at logout), or
`~/.cache/flipper/dev-store` where there is no such directory. Nothing here imports fakeredis or uvicorn.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit


def path() -> Path:
    """The per-user file that holds the URL."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "flipper-dev-store"
    return Path.home() / ".cache" / "flipper" / "dev-store"


def record(url: str) -> None:
    """Write the embedded store's `url`, for `recorded_url`."""
    file = path()
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(url + "\n", encoding="utf-8")


def forget(url: str) -> None:
    """Remove the file, if it still holds `url` (a dev server started since may have recorded its own)."""
    with contextlib.suppress(OSError):
        if path().read_text(encoding="utf-8").strip() == url:
            path().unlink()


def recorded_url() -> str | None:
    """The URL a running dev server recorded, if something listens there; else None (none runs, or one was
    killed before it could remove the file)."""
    try:
        url = path().read_text(encoding="utf-8").strip()
        parts = urlsplit(url)
        with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=0.25):
            return url
    except (OSError, ValueError):  # no file, nothing listening, or not a URL with a port
        return None
