"""Batched commits shared by the stores: messages that arrive together are committed
in one transaction, and each caller still returns only once its own message is stored."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from chat.store import Posted, RoomGone, StoreClosed

CLOSE_DRAIN_SECONDS = 5.0


@dataclass(slots=True)
class Draft:
    room: str
    author_id: str
    author: str
    text: str
    nonce: str | None
    done: asyncio.Future[Posted] = field(repr=False)

    @property
    def nonce_key(self) -> tuple[str, str, str] | None:
        return (self.room, self.author_id, self.nonce) if self.nonce else None


# Commits a batch in one transaction: a result per draft, or None where the room is gone.
CommitBatch = Callable[[list[Draft]], Awaitable[list[Posted | None]]]


class Batcher:
    def __init__(self, commit: CommitBatch, name: str) -> None:
        self._commit = commit
        self._name = name
        self._drafts: list[Draft] = []
        self._waiting = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def submit(
        self, room: str, author_id: str, author: str, text: str, nonce: str | None
    ) -> Posted:
        if self._closing:
            raise StoreClosed("the store is closed")
        done = asyncio.get_running_loop().create_future()
        self._drafts.append(Draft(room, author_id, author, text, nonce or None, done))
        self._waiting.set()
        return await done

    async def close(self) -> None:
        """Commit what is already queued, then stop; give up after a while."""
        self._closing = True
        if self._task is None:
            return
        self._waiting.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), CLOSE_DRAIN_SECONDS)
        except TimeoutError:
            self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        try:
            while not (self._closing and not self._drafts):
                await self._waiting.wait()
                self._waiting.clear()
                batch, self._drafts = self._drafts, []
                if batch:
                    await self._settle(batch)
        finally:
            _fail(self._drafts, StoreClosed("the store is closed"))
            self._drafts = []

    async def _settle(self, batch: list[Draft]) -> None:
        try:
            results = await self._commit(batch)
        except asyncio.CancelledError:
            _fail(batch, StoreClosed("the store is closed"))
            raise
        except Exception as error:  # a failed commit fails every caller in it
            _fail(batch, error)
            return
        for draft, result in zip(batch, results, strict=True):
            if draft.done.done():
                continue
            if result is None:
                draft.done.set_exception(RoomGone(draft.room))
            else:
                draft.done.set_result(result)


def _fail(drafts: list[Draft], error: BaseException) -> None:
    for draft in drafts:
        if not draft.done.done():
            draft.done.set_exception(error)
