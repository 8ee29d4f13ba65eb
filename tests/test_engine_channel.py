"""The channel's two ways in (`offer` for a batch, the function `sender` makes for one item at a
time) keep the same full-edge rule, count what they take, and wake the consumer; its two ways
out (`take`, and the function `taker` makes) keep the order and wake waiting producers."""

from __future__ import annotations

import asyncio
from typing import Any

from pipelines.channel import Channel, Waker


class _Counts:
    items_out = 0


def _sender(ch: Channel, done: Any) -> tuple[Any, _Counts, list[Any]]:
    counts = _Counts()
    fulls: list[Any] = []

    def when_full(item: Any) -> Any:
        fulls.append(item)
        return "waits"

    return ch.sender(counts, done, when_full), counts, fulls


def test_offer_takes_what_fits_and_says_where_it_stopped() -> None:
    ch = Channel(3)
    assert ch.offer([1, 2]) == 2
    assert ch.offer([3, 4, 5]) == 1  # one place left
    assert ch.full and list(ch.buf) == [1, 2, 3]
    assert ch.offer([4, 5], 0) == 0
    assert ch.take(2) == [1, 2]
    assert ch.offer([3, 4, 5], 1) == 3  # the rest, from where it stopped
    assert list(ch.buf) == [3, 4, 5]


def test_sender_appends_counts_and_returns_done_until_full() -> None:
    ch = Channel(2)
    done = object()
    send, counts, fulls = _sender(ch, done)
    assert send("a") is done and send("b") is done
    assert counts.items_out == 2 and list(ch.buf) == ["a", "b"]
    # full: the item is not appended nor counted; when_full gets it
    assert send("c") == "waits"
    assert fulls == ["c"] and counts.items_out == 2 and list(ch.buf) == ["a", "b"]
    assert ch.take(1) == ["a"]
    assert send("c") is done
    assert list(ch.buf) == ["b", "c"] and counts.items_out == 3


def test_sender_hands_an_abandoned_channel_to_when_full() -> None:
    ch = Channel(4)
    send, counts, fulls = _sender(ch, object())
    send(1)
    assert ch.abandon() == 1
    assert send(2) == "waits"  # the consumer is gone: nothing is appended
    assert fulls == [2] and counts.items_out == 1 and not ch.buf


async def test_sender_wakes_the_consumer_that_waits() -> None:
    waker = Waker()
    ch = Channel(4, wake=waker)
    send, _, _ = _sender(ch, object())
    fut = waker.arm()
    assert not fut.done()
    send("x")
    assert fut.done() and waker.waiting is None  # woken once; it let go of the future
    send("y")  # nobody waits: nothing to wake
    assert list(ch.buf) == ["x", "y"]


async def test_a_full_channel_wakes_its_putters_when_the_consumer_takes() -> None:
    ch = Channel(1)
    assert ch.offer([1]) == 1
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    ch.add_putter(fut)
    assert not fut.done()
    ch.take(1)
    assert fut.done()


async def test_take_and_taker_give_items_in_order_and_wake_waiting_producers() -> None:
    """The two ways out: `take` (a batch) and the function `taker` makes (one item, as a
    1-tuple, or None when there is none) keep the order, and both wake a producer that waits
    for room."""
    loop = asyncio.get_running_loop()
    ch = Channel(3)
    take_one = ch.taker()
    assert take_one() is None
    assert ch.offer([1, 2, 3]) == 3 and ch.full
    room: asyncio.Future[None] = loop.create_future()
    ch.add_putter(room)
    assert take_one() == (1,)
    assert room.done(), "taker woke the producer waiting for room"
    ch.remove_putter(room)
    assert ch.offer([4]) == 1 and list(ch.buf) == [2, 3, 4]
    room = loop.create_future()
    ch.add_putter(room)
    assert ch.take(1, as_tuples=True) == [(2,)]
    assert room.done(), "take woke the producer waiting for room"
    ch.remove_putter(room)
    assert (take_one(), take_one(), take_one()) == ((3,), (4,), None)
