"""A thread of its own for one SQLite connection: calls run there one at a time, in the
order they were made, and each result comes back to the event loop.

A one-thread `ThreadPoolExecutor` did this before; profiled under load, handing a
message's insert over that way (a concurrent Future with its Condition and locks, then
one chained to an asyncio Future) cost the event loop more than rendering the message.
Here a call is one queue put, and its result one `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Call = tuple[Callable[[], Any], asyncio.Future, asyncio.AbstractEventLoop]


class Worker:
    def __init__(self, name: str) -> None:
        self._name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def run(self, work: Callable[[], T]) -> T:
        """`work()` on the worker's thread, after the calls made before it."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        self._calls.put((work, done, loop))
        return await done

    def stop(self) -> None:
        """Finish the calls already made, then end the thread (waiting for it)."""
        if self._thread is not None:
            self._calls.put(None)
            self._thread.join()
            self._thread = None

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            work, done, loop = call
            try:
                result = work()
            except BaseException as error:  # handed to the caller, whatever it is
                _hand_back(loop, _fail, done, error)
            else:
                _hand_back(loop, _succeed, done, result)


def _hand_back(loop: asyncio.AbstractEventLoop, settle: Callable, *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
        loop.call_soon_threadsafe(settle, *args)


def _succeed(done: asyncio.Future, result: object) -> None:
    if not done.cancelled():
        done.set_result(result)


def _fail(done: asyncio.Future, error: BaseException) -> None:
    if not done.cancelled():
        done.set_exception(error)
