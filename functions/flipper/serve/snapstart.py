"""Lambda SnapStart: what a snapshot must not carry is dropped before it, and made again after each restore.

With SnapStart, Lambda runs the init once, snapshots the memory, and starts every new instance from a copy.
Sockets in the snapshot are dead when it is restored, and every copy would draw the same random numbers.
The hooks are registered through `snapshot_restore_py`, which Lambda's Python runtime provides (SnapStart on
or off); elsewhere it is missing and nothing is registered, as no snapshot is ever taken.
"""

from __future__ import annotations

import asyncio
import random

from flipper.core.store import Store


def register_hooks(store: Store, loop: asyncio.AbstractEventLoop, warm_seconds: float) -> bool:
    """Register the hooks with the Lambda runtime; False outside it."""
    try:
        import snapshot_restore_py
    except ImportError:
        return False
    snapshot_restore_py.register_before_snapshot(before_snapshot, store, loop)
    snapshot_restore_py.register_after_restore(after_restore, store, loop, warm_seconds)
    return True


def before_snapshot(store: Store, loop: asyncio.AbstractEventLoop) -> None:
    """Close the Redis connections: a restored copy could not use them, nor share them with other copies."""
    loop.run_until_complete(store.aclose())  # the client stays usable: it connects again when asked


def after_restore(store: Store, loop: asyncio.AbstractEventLoop, warm_seconds: float) -> None:
    """Draw new random state (the cluster client picks nodes with it), then connect and load the script
    again, as the init did, so that the first request after a restore pays for neither."""
    random.seed()
    loop.run_until_complete(store.warm(warm_seconds))
