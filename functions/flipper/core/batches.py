"""Concurrent evaluations coalesced into one script call: under load, one round trip answers many (issue 11).

An evaluation that arrives while none is in flight is sent at once, alone: a Lambda instance, which serves
one request at a time, pays nothing for this module. One that arrives while a call is in flight joins the
next batch, sent as soon as that call lands, with the union of the batch's keys. A batch is sent after every
evaluation in it arrived, so it sees every write acknowledged before any of them asked: coalescing adds no
staleness, and each evaluation waits at most for the call in flight before its own.

Failures stay each evaluation's own. When the call in flight fails because the store is unreachable or
hung (a `contagious` error), the batch waiting behind it fails with it at once rather than one timeout
later. When a shared call fails otherwise (a flag key of one caller's holding a string, say), each
evaluation in it asks again alone, so that only the caller whose keys fail gets the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Read = TypeVar("Read")


class _Batch(Generic[Read]):
    """Evaluations gathered while a call was in flight: their keys, in order of arrival, and one result."""

    __slots__ = ("asked", "keys", "result")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.keys: dict[str, None] = {}
        self.asked = 0
        self.result: asyncio.Future[Read] = loop.create_future()
        self.result.add_done_callback(_retrieve)


class Batches(Generic[Read]):
    """Sends `send(keys)` for one evaluation, or for a batch of them (their keys' union), one call at a time;
    each evaluation gets the whole call's result."""

    def __init__(
        self, send: Callable[[list[str]], Awaitable[Read]], contagious: tuple[type[Exception], ...] = ()
    ) -> None:
        self._send = send
        self._contagious = contagious
        self._flying = False  # a call is in flight: arrivals join `_next`
        self._next: _Batch[Read] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None  # held: the loop keeps only a weak reference

    async def ask(self, keys: Sequence[str]) -> Read:
        """The result of a call that covers `keys`, sent after this was asked."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a call in flight on another (closed) loop will never land here
            self._loop, self._flying, self._next = loop, False, None
        if not self._flying:
            self._flying = True
            failure = None
            try:
                return await self._send(list(keys))
            except Exception as exc:
                failure = exc
                raise
            finally:
                self._land(loop, failure)
        batch = self._next
        if batch is None:
            batch = self._next = _Batch(loop)
        batch.keys.update(dict.fromkeys(keys))
        batch.asked += 1
        try:
            return await asyncio.shield(batch.result)  # a waiter that gives up does not cancel the others' call
        except Exception as exc:
            if batch.asked == 1 or isinstance(exc, self._contagious):
                raise
            return await self._send(list(keys))  # perhaps another's keys failed the shared call: alone now

    def _land(self, loop: asyncio.AbstractEventLoop, failure: Exception | None) -> None:
        """The call in flight landed: send the batch that gathered meanwhile, if any, or fail it at once with
        the store's being unreachable or hung."""
        if loop is not self._loop:
            return  # a call of a closed loop's, ended when collected: the current loop's state is not its own
        batch = self._next
        if batch is None:
            self._flying = False
        elif isinstance(failure, self._contagious):
            self._next, self._flying = None, False
            batch.result.set_exception(failure)
        else:
            self._task = loop.create_task(self._fly(loop, batch))

    async def _fly(self, loop: asyncio.AbstractEventLoop, batch: _Batch[Read]) -> None:
        self._next = None  # from here on, arrivals gather into the batch after this one
        failure = None
        try:
            batch.result.set_result(await self._send(list(batch.keys)))
        except asyncio.CancelledError:
            batch.result.cancel()
            raise
        except Exception as exc:  # every waiter gets it (see `ask`)
            failure = exc
            batch.result.set_exception(exc)
        finally:
            self._land(loop, failure)


def _retrieve(result: asyncio.Future[object]) -> None:
    """Mark a batch's exception as seen even when every waiter gave up before it came (no asyncio warning)."""
    if not result.cancelled():
        result.exception()
