"""``zk.watch(path)``: the events of a persistent watch as an async
iterator over a bounded queue."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Optional

from kazoo.protocol.states import EventType, WatchedEvent

from fastzk.protocol.watches import AddWatchMode

if TYPE_CHECKING:
    from fastzk.aio.client import AsyncClient

__all__ = ["WatchStream"]


class WatchStream(object):
    """The events under ``path`` (its subtree with ``recursive``).

    ``async with zk.watch(path) as events: async for event in events``.
    An event of type ``EventType.NONE`` is a reset: the watch was
    re-established after a reconnect or a new session, and changes may
    have been missed (re-read what you mirror).  When the consumer falls
    ``maxsize`` events behind, the queued events are dropped and a reset
    is delivered instead.
    """

    def __init__(self, client: "AsyncClient", path: str, recursive: bool,
                 maxsize: int = 1024) -> None:
        self.client = client
        self.path = path
        self.recursive = recursive
        self._queue: "asyncio.Queue[WatchedEvent]" = asyncio.Queue(maxsize)
        self._active = False

    def _event(self, event: WatchedEvent) -> None:
        if not self._active:
            return
        queue = self._queue
        if queue.full():
            while not queue.empty():
                queue.get_nowait()
            event = WatchedEvent(EventType.NONE, self.client.state, self.path)
        queue.put_nowait(event)

    async def __aenter__(self) -> "WatchStream":
        mode = (AddWatchMode.PERSISTENT_RECURSIVE if self.recursive
                else AddWatchMode.PERSISTENT)
        self._active = True
        await self.client.add_watch(self.path, self._event, mode)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._active = False
        try:
            await self.client.release_watches(self.path, self._event)
        except Exception:
            pass  # the client stopped

    def __aiter__(self) -> "WatchStream":
        return self

    async def __anext__(self) -> WatchedEvent:
        return await self._queue.get()

    async def get(self, timeout: Optional[float] = None) -> WatchedEvent:
        """The next event, waiting at most ``timeout`` seconds."""
        return await asyncio.wait_for(self._queue.get(), timeout)
