"""SnapStart's cycle, in-process: init, the before-snapshot hooks, every old socket dead, the after-restore hooks.

`snapshot_restore_py` is Lambda's; here a stand-in records the hooks the handler registers and runs them in
the runtime's order (before a snapshot: the reverse of registration; after a restore: registration order).
"""

from __future__ import annotations

import random
import sys
import types
from collections.abc import Callable
from typing import Any

import pytest

from bench.servers import RedisServer
from tests.conftest import LoadHandler, Observer
from tests.lambda_events import request_event
from tests.test_handler import body, invoke

Hook = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class SnapshotRuntime:
    """The two registration functions of `snapshot_restore_py`, and the runtime's calls of the hooks."""

    def __init__(self) -> None:
        self.before: list[Hook] = []
        self.after: list[Hook] = []

    def module(self) -> types.ModuleType:
        module = types.ModuleType("snapshot_restore_py")
        module.register_before_snapshot = lambda func, *args, **kwargs: self.before.append((func, args, kwargs))
        module.register_after_restore = lambda func, *args, **kwargs: self.after.append((func, args, kwargs))
        return module

    def snapshot(self) -> None:
        for func, args, kwargs in reversed(self.before):
            func(*args, **kwargs)

    def restore(self) -> None:
        for func, args, kwargs in self.after:
            func(*args, **kwargs)


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> SnapshotRuntime:
    runtime = SnapshotRuntime()
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime.module())
    return runtime


def test_snapshot_and_restore_close_then_reopen_one_connection(
    load_handler: LoadHandler, own_redis_server: RedisServer, observer: Observer, runtime: SnapshotRuntime
) -> None:
    module = load_handler(REDIS_URL=own_redis_server.url, FLIPPER_KEY_PREFIX="")
    assert (len(runtime.before), len(runtime.after)) == (1, 1)

    runtime.snapshot()
    assert len(observer.client.client_list()) == 1  # the observer alone: the function closed its connection
    own_redis_server.stop()  # every socket from before the snapshot dies with it
    own_redis_server.start()
    observer.client.sadd("version:v1:positive", "feature_A")  # a Redis without persistence restarts empty
    observer.reset()
    runtime.restore()

    assert observer.client.script_exists(module.store._evaluate.sha) == [True]  # warmed again
    responses = [invoke(module, request_event("http-api", "/", [("version", "v1")])) for _ in range(50)]
    assert [(r["statusCode"], body(r)) for r in responses] == [(200, {"features": ["feature_A"]})] * 50
    assert observer.new_connections() == 1
    assert observer.calls("evalsha") == 50


def test_each_restored_copy_draws_its_own_random_state(
    load_handler: LoadHandler, own_redis_server: RedisServer, runtime: SnapshotRuntime
) -> None:
    load_handler(REDIS_URL=own_redis_server.url, FLIPPER_KEY_PREFIX="")
    runtime.snapshot()
    snapshot = random.getstate()
    draws = []
    for _ in range(2):  # two instances restored from the one snapshot
        random.setstate(snapshot)
        runtime.restore()
        draws.append(random.random())
    assert draws[0] != draws[1]


def test_outside_lambda_no_hooks_are_registered(load_handler: LoadHandler, own_redis_server: RedisServer) -> None:
    assert "snapshot_restore_py" not in sys.modules
    module = load_handler(REDIS_URL=own_redis_server.url, FLIPPER_KEY_PREFIX="")
    assert module.register_hooks(module.store, module.loop, 0.25) is False
