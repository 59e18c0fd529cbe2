"""A lock's requests bounded by one overall deadline: a timed
``acquire(timeout=T)`` returns within T, every request and wait included,
even while the connection is down or frozen."""

import time
from typing import Any, Callable, List, Optional

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from fastzk.kazooface.fastpath import FastPath


class _DeadlinePassed(Exception):
    """The overall deadline passed while a request was outstanding."""


class _DeadlineCalls(object):
    """The requests of a :class:`fastzk.lock.Lock`, each waiting no longer
    than the time its deadline leaves."""

    # Set by fastzk.lock.Lock.__init__.
    client: KazooClient
    wake_event: Any
    _fast: Optional[FastPath]
    _path: str

    def _pause(self, deadline: Optional[float], step: float) -> bool:
        """Sleep ``step`` (less if the deadline is closer); False when the
        deadline has passed.  :meth:`cancel` cuts the sleep short."""
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            step = min(step, remaining)
        self.wake_event.wait(step)
        self.wake_event.clear()
        return True

    def _call(self, deadline: Optional[float], method: str, *args: Any,
              **kwargs: Any) -> Any:
        """Run the client's request ``method``; with a deadline, wait for
        its reply no longer than the time left.

        A request given up on may still run on the server: requests of a
        client run in order, so the cleanup's own requests, made later,
        still see what it did.
        """
        client = self.client
        if deadline is None:
            return getattr(client, method)(*args, **kwargs)
        fast = self._fast
        if fast is not None:
            return self._call_fast(deadline, getattr(client, method),
                                   *args, **kwargs)
        if deadline <= time.monotonic():
            raise _DeadlinePassed()
        try:
            result = getattr(client, method + "_async")(*args, **kwargs)
            return result.get(timeout=deadline - time.monotonic())
        except client.handler.timeout_exception:
            raise _DeadlinePassed()

    def _call_fast(self, deadline: Optional[float], func: Callable[..., Any],
                   *args: Any, **kwargs: Any) -> Any:
        """Run ``func``, a synchronous call of fastzk's client, waiting for
        its reply no longer than ``deadline`` (the calling thread reads its
        own reply)."""
        if deadline is None:
            return func(*args, **kwargs)
        if deadline <= time.monotonic():
            raise _DeadlinePassed()
        fast = self._fast
        assert fast is not None  # only called with fastzk's client
        try:
            with fast.bounded(deadline):
                return func(*args, **kwargs)
        except self.client.handler.timeout_exception:
            raise _DeadlinePassed()

    def _children(self, deadline: Optional[float],
                  watched: bool = False) -> Optional[List[str]]:
        """The lock path's children (None if it does not exist).

        ``watched``: on fastzk's client made with
        ``cached_lock_checks=True``, the list a child watch keeps current
        may answer without a round trip (see fastzk.protocol.childview); only for
        the check before a non-blocking create.
        """
        fast = self._fast
        try:
            children: List[str]
            if watched and fast is not None and fast.cached_lock_checks:
                children = self._call_fast(deadline, fast.watched_children,
                                           self._path)
            else:
                children = self._call(deadline, "get_children", self._path)
        except NoNodeError:
            return None
        return children
