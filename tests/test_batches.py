"""Concurrent evaluations coalesced into one call (flipper.core.batches): who is sent when, and with what."""

from __future__ import annotations

import asyncio
import gc

import pytest

from flipper.core.batches import Batches


class Unreachable(Exception):
    """The store is down or hung: what fails one call fails the next the same way."""


class Recorder:
    """A `send` that records each call's keys and waits until the test lets it land; a call that holds a key
    of `failing` raises `failing[key]`."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.landing: list[asyncio.Event] = []
        self.failing: dict[str, Exception] = {}

    async def __call__(self, keys: list[str]) -> list[str]:
        self.calls.append(keys)
        landed = asyncio.Event()
        self.landing.append(landed)
        await landed.wait()
        for key in keys:
            if key in self.failing:
                raise self.failing[key]
        return keys

    async def sent(self, count: int) -> None:
        """Wait until `count` calls have been sent."""
        while len(self.calls) < count:  # noqa: ASYNC110 (stepping the loop is the point; an Event binds one loop)
            await asyncio.sleep(0)


async def test_alone_an_evaluation_is_sent_at_once_with_its_own_keys() -> None:
    send = Recorder()
    batches = Batches(send)
    asked = asyncio.create_task(batches.ask(["a", "b"]))
    await send.sent(1)
    send.landing[0].set()
    assert await asked == ["a", "b"]
    assert send.calls == [["a", "b"]]


async def test_arrivals_during_a_call_share_the_next_one_sent_when_it_lands() -> None:
    send = Recorder()
    batches = Batches(send)
    first = asyncio.create_task(batches.ask(["global", "user:1"]))
    await send.sent(1)
    waiting = [asyncio.create_task(batches.ask(["global", f"user:{n}"])) for n in (2, 3, 2)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(send.calls) == 1  # not sent while the first is in flight: that is what they wait for
    send.landing[0].set()
    await send.sent(2)
    assert send.calls[1] == ["global", "user:2", "user:3"]  # the union, in order of arrival
    send.landing[1].set()
    assert await first == ["global", "user:1"]
    assert [await task for task in waiting] == [["global", "user:2", "user:3"]] * 3
    assert len(send.calls) == 2


async def test_when_a_shared_call_fails_each_asks_again_alone_and_only_its_owner_fails() -> None:
    """A flag key of one caller's holding a string fails the script for the whole batch: not the others."""
    send = Recorder()
    batches = Batches(send, contagious=(Unreachable,))
    send.failing["user:bad"] = ValueError("WRONGTYPE")
    first = asyncio.create_task(batches.ask(["global"]))
    await send.sent(1)
    shared = [asyncio.create_task(batches.ask(["global", user])) for user in ("user:bad", "user:good")]
    await asyncio.sleep(0)
    send.landing[0].set()
    await send.sent(2)
    assert send.calls[1] == ["global", "user:bad", "user:good"]
    send.landing[1].set()
    await send.sent(4)
    assert sorted(send.calls[2:]) == [["global", "user:bad"], ["global", "user:good"]]
    for landed in send.landing[2:]:
        landed.set()
    assert await first == ["global"]
    with pytest.raises(ValueError, match="WRONGTYPE"):
        await shared[0]
    assert await shared[1] == ["global", "user:good"]


async def test_a_store_unreachable_fails_the_batch_waiting_behind_its_call_at_once() -> None:
    """Redis hung: the evaluations waiting behind the call in flight are answered when it fails, not one
    more timeout later; the next evaluation is sent again."""
    send = Recorder()
    batches = Batches(send, contagious=(Unreachable,))
    send.failing["a"] = Unreachable("timeout")
    first = asyncio.create_task(batches.ask(["a"]))
    await send.sent(1)
    waiting = [asyncio.create_task(batches.ask([key])) for key in "bc"]
    await asyncio.sleep(0)
    send.landing[0].set()
    for task in [first, *waiting]:
        with pytest.raises(Unreachable, match="timeout"):
            await task
    assert send.calls == [["a"]]  # the waiting batch was never sent
    after = asyncio.create_task(batches.ask(["d"]))
    await send.sent(2)
    send.landing[1].set()
    assert await after == ["d"]


async def test_a_waiter_that_gives_up_does_not_cancel_the_call_for_the_others() -> None:
    send = Recorder()
    batches = Batches(send)
    first = asyncio.create_task(batches.ask(["a"]))
    await send.sent(1)
    quitter = asyncio.create_task(batches.ask(["b"]))
    stayer = asyncio.create_task(batches.ask(["c"]))
    await asyncio.sleep(0)
    send.landing[0].set()
    await send.sent(2)
    quitter.cancel()
    send.landing[1].set()
    assert await stayer == ["b", "c"]
    assert quitter.cancelled()
    assert await first == ["a"]


async def test_an_evaluation_cancelled_in_flight_lets_the_next_ones_be_sent() -> None:
    send = Recorder()
    batches = Batches(send)
    first = asyncio.create_task(batches.ask(["a"]))
    await send.sent(1)
    waiting = asyncio.create_task(batches.ask(["b"]))
    await asyncio.sleep(0)
    first.cancel()  # a client hung up: its request is cancelled with the call it was making
    await send.sent(2)
    send.landing[1].set()
    assert await waiting == ["b"]
    after = asyncio.create_task(batches.ask(["c"]))  # nothing in flight: sent at once
    await send.sent(3)
    send.landing[2].set()
    assert await after == ["c"]


def leave_a_call_in_flight_on_a_closed_loop(batches: Batches[list[str]], send: Recorder) -> None:
    async def leave_in_flight() -> None:
        left = asyncio.get_running_loop().create_task(batches.ask(["old"]))
        left._log_destroy_pending = False  # type: ignore[attr-defined]  # left pending on purpose
        await send.sent(1)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(leave_in_flight())
    loop.close()


def test_a_call_left_in_flight_on_a_closed_loop_does_not_block_the_next_loop() -> None:
    """The Lambda handler, the CLI and tests may run one store in successive event loops."""
    send = Recorder()
    batches = Batches(send)
    leave_a_call_in_flight_on_a_closed_loop(batches, send)

    async def ask_again() -> list[str]:
        asked = asyncio.create_task(batches.ask(["b"]))
        await send.sent(2)
        send.landing[1].set()
        return await asked

    assert asyncio.run(ask_again()) == ["b"]


def test_a_call_of_a_closed_loop_collected_later_leaves_the_new_loops_calls_alone() -> None:
    """Its coroutine, closed when collected, must not mark the new loop's call as landed: a second call
    would then go out beside it, unbatched."""
    send = Recorder()
    batches = Batches(send)
    leave_a_call_in_flight_on_a_closed_loop(batches, send)

    async def collect_the_old_call_while_a_new_one_flies() -> list[list[str]]:
        first = asyncio.create_task(batches.ask(["a"]))
        await send.sent(2)
        send.landing[0] = asyncio.Event()  # the old call's last reference: its coroutine is now garbage
        gc.collect()
        second = asyncio.create_task(batches.ask(["b"]))
        for _ in range(5):
            await asyncio.sleep(0)
        assert send.calls[2:] == []  # still batched behind the call in flight
        send.landing[1].set()
        await send.sent(3)
        send.landing[2].set()
        return [await first, await second]

    assert asyncio.run(collect_the_old_call_while_a_new_one_flies()) == [["a"], ["b"]]
