"""The watches of :class:`~fastzk.aio.AsyncClient`: delivering their
events on the loop, and add_watch, remove_all_watches, release_watches
(``zk.watch``, DataWatch and ChildrenWatch are in
:mod:`fastzk.aio.recipes`)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Sequence

from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    NoNodeError,
    NoWatcherError,
    SessionExpiredError,
)
from kazoo.protocol.states import EventType, KazooState, WatchedEvent

from fastzk.aio.nodecalls import NodeCalls, WatchFunc
from fastzk.protocol import builders as _rq
from fastzk.protocol.watches import EVENT_TYPES, WatcherType
from fastzk.recipes.watchrelease import must_remove

__all__ = ["WatchCalls"]


class WatchCalls(NodeCalls):
    """The watch requests, and the delivery of watch events (a part of
    :class:`~fastzk.aio.AsyncClient`)."""

    # -- watches -----------------------------------------------------------

    def _dispatch_watch(self, event_type: int, path: str,
                        funcs: Sequence[WatchFunc]) -> None:
        event = WatchedEvent(EVENT_TYPES[event_type], self.state,
                             self.unchroot(path))
        self._run_watchers(funcs, event)

    def _run_watchers(self, funcs: Any, event: WatchedEvent) -> None:
        loop = self._loop
        if loop is None:
            return
        for func in funcs:
            loop.call_soon(_call_watcher, func, event)

    def _reconnected(self) -> None:
        # SetWatches2 restored the persistent watches, but the server sends
        # no catch-up events for them: tell their watchers to re-read.
        for _kind, path, funcs in self.machine.watches.persistent_items():
            self._run_watchers(list(funcs), WatchedEvent(
                EventType.NONE, self.state, self.unchroot(path)))

    def _expired(self) -> None:
        # One-shot watches die with the session (kazoo fires them with a
        # NONE event); persistent ones are re-added on the new session.
        funcs = self.machine.watches.clear_one_shot()
        self._run_watchers(funcs, WatchedEvent(EventType.NONE,
                                               KazooState.LOST, None))

    def add_watch_async(self, path: str, watch: WatchFunc, mode: int
                        ) -> "asyncio.Future[bool]":
        """Put an addWatch in flight now (see :meth:`add_watch`); the
        future of its reply."""
        if not callable(watch):
            raise TypeError("Invalid type for 'watch' (must be a callable)")
        full = self._full_path(path)
        recursive = int(mode) == 1
        return self._call(_rq.add_watch, full, watch, recursive)

    async def add_watch(self, path: str, watch: WatchFunc,
                        mode: int) -> bool:
        """Add a persistent (``AddWatchMode.PERSISTENT``) or recursive
        (``AddWatchMode.PERSISTENT_RECURSIVE``) watch (ZooKeeper 3.6+)."""
        result: bool = await self.add_watch_async(path, watch, mode)
        return result

    async def remove_all_watches(self, path: str,
                                 watcher_type: WatcherType) -> bool:
        """Remove every watch of ``watcher_type`` this session holds on
        ``path``; raises NoWatcherError when there is none."""
        full = self._full_path(path)
        watcher_type = WatcherType(watcher_type)
        result: bool = await self._call(_rq.remove_watches, full,
                                        watcher_type)
        return result

    async def release_watches(self, path: str, func: WatchFunc,
                              watcher_type: WatcherType = WatcherType.ANY
                              ) -> None:
        """Stop ``func``'s watches of ``watcher_type`` on ``path``: they
        are removed from the server when no other function of this client
        shares them (ZooKeeper keeps one watch per kind, path and session,
        and removeWatches drops it for every function behind it); else
        they stay for the others.  A watch already gone (fired, or with
        the session) is not an error."""
        full = self._full_path(path)
        watcher_type = WatcherType(watcher_type)
        if not must_remove(self.machine.watches, full, func, watcher_type):
            return
        try:
            await self.remove_all_watches(path, watcher_type)
        except (NoWatcherError, NoNodeError, ConnectionLoss,
                ConnectionClosedError, SessionExpiredError):
            pass


def _call_watcher(func: WatchFunc, event: WatchedEvent) -> None:
    try:
        result = func(event)
        if inspect.isawaitable(result):
            asyncio.ensure_future(result)
    except Exception:
        import logging

        logging.getLogger("fastzk.aio").exception("Error in watch callback")
