"""DataWatch and ChildrenWatch for the asyncio client.

Each runs a task that reads the node with a one-shot watch, calls the
function with what it read, and reads again when the watch fires; a
connection loss is retried once the client is connected again (the
one-shot watch itself is restored by SetWatches), a new session after an
expiry re-reads.  The function may be a plain or a coroutine function;
returning False stops the watch, as in kazoo.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any, Callable, List, Optional

from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    NoNodeError,
    SessionExpiredError,
)
from kazoo.protocol.states import WatchedEvent

if TYPE_CHECKING:
    from fastzk.aio.client import AsyncClient

__all__ = ["ChildrenWatch", "DataWatch"]


class _Watch(object):
    def __init__(self, client: "AsyncClient", path: str,
                 func: Callable[..., Any]) -> None:
        self.client = client
        self.path = path
        self.func = func
        self._changed = asyncio.Event()
        #: Whether the watch has stopped (the function returned False).
        self.stopped = False
        self._task = asyncio.ensure_future(self._run())

    def _fire(self, event: WatchedEvent) -> None:
        self._changed.set()

    async def _call(self, *args: Any) -> bool:
        result = self.func(*args)
        if inspect.isawaitable(result):
            result = await result
        return result is not False

    async def _read(self) -> bool:
        raise NotImplementedError

    async def _run(self) -> None:
        delay = 0.05
        while not self.stopped:
            self._changed.clear()
            try:
                go_on = await self._read()
            except ConnectionClosedError:
                return
            except (ConnectionLoss, SessionExpiredError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            delay = 0.05
            if not go_on:
                self.stopped = True
                return
            await self._changed.wait()

    async def stop(self) -> None:
        """Stop watching."""
        self.stopped = True
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass


class DataWatch(_Watch):
    """Call ``func(data, stat)`` now and on each change of ``path``'s data
    or existence (``(None, None)`` while it does not exist)."""

    def __init__(self, client: "AsyncClient", path: str,
                 func: Callable[..., Any]) -> None:
        self._last: Any = ()
        super().__init__(client, path, func)

    async def _read(self) -> bool:
        data: Optional[bytes]
        stat: Any
        try:
            data, stat = await self.client.get(self.path, watch=self._fire)
        except NoNodeError:
            if await self.client.exists(self.path, watch=self._fire):
                self._changed.set()  # created meanwhile: read it
                return True
            data = stat = None
        key = (stat.mzxid, stat.czxid) if stat is not None else None
        if key == self._last:
            return True
        self._last = key
        return await self._call(data, stat)


class ChildrenWatch(_Watch):
    """Call ``func(children)`` now and on each change of ``path``'s
    children (``[]`` while it does not exist)."""

    def __init__(self, client: "AsyncClient", path: str,
                 func: Callable[..., Any]) -> None:
        self._last: Optional[List[str]] = None
        super().__init__(client, path, func)

    async def _read(self) -> bool:
        try:
            children: List[str] = await self.client.get_children(
                self.path, watch=self._fire)
        except NoNodeError:
            if await self.client.exists(self.path, watch=self._fire):
                self._changed.set()
                return True
            children = []
        if children == self._last:
            return True
        self._last = list(children)
        return await self._call(children)


