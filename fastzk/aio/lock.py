"""The lock recipe of the asyncio client.

The nodes are kazoo's (``<path>/<uuid hex>__lock__<sequence>``, ephemeral
sequential, data = the identifier), so kazoo, fastzk thread and asyncio
lockers on one path exclude each other.  As fastzk's thread recipe:

- a non-blocking attempt on a held lock reads the children and returns
  False having written nothing;
- the create and the read of the children that decides the lock are
  pipelined in one round trip: the server runs a session's requests in
  the order sent, so the list holds the new node and every earlier one;
- a node this lock no longer needs is deleted by a cleanup task that
  retries across reconnects until the server confirms it, and that a
  cancellation cannot interrupt (it is shielded).  A create whose reply was
  lost is found again by the lock's uuid prefix;
- an attempt cut by a connection loss is made again once reconnected (the
  session, and so its ephemeral nodes, outlives the loss), after its node
  was deleted.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    List,
    Optional,
    Tuple,
    Union,
)

from kazoo.exceptions import (
    LockTimeout,
    NoNodeError,
    SessionExpiredError,
)
from kazoo.protocol.states import KazooState, ZnodeStat

from fastzk.aio.retry import retry_cut_attempts, until_session_ends, within
from fastzk.recipes.locknames import EXCLUSIVE, in_lock_order, predecessor
from fastzk.recipes.lockpaths import lock_path

if TYPE_CHECKING:
    from fastzk.aio.client import AsyncClient

__all__ = ["Lock", "LostCallback"]

#: A callback of :meth:`Lock.on_lost`: called with the lock; a coroutine
#: it returns runs as a task.
LostCallback = Callable[[Any], Union[None, Awaitable[Any]]]


class Lock(object):
    """An exclusive lock on ``path`` (kazoo's ``Lock`` nodes).

    :param client: the :class:`~fastzk.aio.AsyncClient`.
    :param path: the lock path, normalised as kazoo does (see
                 :func:`fastzk.recipes.lockpaths.lock_path`).
    :param identifier: stored as the contender node's data.
    :raises: TypeError if ``path`` is not a str, ValueError for a path
             ZooKeeper refuses.

    ``async with lock:`` acquires (blocking) and releases.
    """

    #: The marker of this lock's node names (fastzk.recipes.locknames).
    _MARKER = EXCLUSIVE
    #: The markers of the earlier contenders this lock waits for.
    _BLOCKED_BY: Tuple[str, ...] = (EXCLUSIVE,)

    def __init__(self, client: "AsyncClient", path: str,
                 identifier: Optional[str] = "") -> None:
        self.client = client
        self.path = lock_path(path)
        self.identifier = identifier or ""
        self.prefix = uuid.uuid4().hex + self._MARKER
        #: The contender node's name while one exists, or None.
        self.node: Optional[str] = None
        #: Whether this lock is held (False again once its session is lost).
        self.is_acquired = False
        #: Set when the session holding the lock was lost.
        self.lost = asyncio.Event()
        self._token: Optional[int] = None
        self._create: Optional["asyncio.Task[Any]"] = None
        self._cleanup: Optional["asyncio.Task[None]"] = None
        self._lost_callbacks: List[LostCallback] = []

    @property
    def fencing_token(self) -> Optional[int]:
        """The czxid of this holder's node while the lock is acquired, else
        None.  It grows between successive holders of one lock path, so a
        resource can refuse writes carrying a smaller token than it saw."""
        return self._token if self.is_acquired else None

    @property
    def held(self) -> bool:
        """Whether the lock is held and its session connected."""
        return self.is_acquired and self.client.state == KazooState.CONNECTED

    def on_lost(self, callback: LostCallback) -> None:
        """Call ``callback(lock)`` when a held lock is lost with its session
        (as the thread client's :meth:`fastzk.Lock.on_lost`).

        Callbacks run on the event loop and must not block; a coroutine
        function's coroutine runs as a task.
        """
        self._lost_callbacks.append(callback)

    def _node_path(self, node: str) -> str:
        return self.path.rstrip("/") + "/" + node

    # -- acquire -----------------------------------------------------------

    async def acquire(self, blocking: bool = True,
                      timeout: Optional[float] = None) -> bool:
        """Acquire the lock; whether it was acquired.

        :param blocking: wait until it is free, or return at once.
        :param timeout: with ``blocking``, raise
                        :exc:`~kazoo.exceptions.LockTimeout` after this
                        many seconds.

        An attempt cut by a connection loss is made again once connected
        (within ``timeout``), as kazoo's ``Lock`` does.
        """
        if self.is_acquired:
            if not blocking:
                return False
            return await self._reentry(timeout)
        gotten = await retry_cut_attempts(
            lambda remaining: self._attempt(blocking, remaining, timeout),
            timeout, "lock on %s" % self.path)
        if not gotten:
            return False
        self.is_acquired = True
        self.lost.clear()
        self.client.add_listener(self._on_state)
        return True

    async def _attempt(self, blocking: bool, remaining: Optional[float],
                       timeout: Optional[float]) -> bool:
        """One attempt: whether it got the lock; its node is deleted when
        it did not (or raised)."""
        if self._cleanup is not None:
            await asyncio.shield(self._cleanup)
        if not blocking:
            try:
                children: List[str] = await self.client.get_children(self.path)
            except NoNodeError:
                children = []
            if in_lock_order(children, self._BLOCKED_BY):
                return False  # held: nothing written
        try:
            gotten = await within(self._contend(blocking), remaining, timeout,
                                  "lock on %s" % self.path)
        except BaseException:
            await self._remove_node()
            raise
        if not gotten:
            await self._remove_node()
        return gotten

    async def _reentry(self, timeout: Optional[float]) -> bool:
        # Not re-entrant (kazoo's rule): wait for this holder's release,
        # then contend, all within the caller's timeout.
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self.is_acquired:
            if deadline is not None and loop.time() >= deadline:
                raise LockTimeout("Failed to acquire lock on %s after %s "
                                  "seconds" % (self.path, timeout))
            await asyncio.sleep(0.05)
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        return await self.acquire(True, remaining)

    async def _contend(self, blocking: bool) -> bool:
        client = self.client
        node_path = self._node_path(self.prefix)
        data = self.identifier.encode("utf-8")
        while True:
            create = asyncio.ensure_future(client.create(
                node_path, data, ephemeral=True, sequence=True,
                include_data=True))
            self._create = create
            # Sent in the same pass of the loop, after the create: one
            # round trip, and the list includes the new node.
            listing = asyncio.ensure_future(client.get_children(self.path))
            try:
                created: Tuple[str, ZnodeStat] = await asyncio.shield(create)
            except NoNodeError:
                listing.cancel()
                self._create = None
                await client.ensure_path(self.path)
                continue
            finally:
                # Retrieve its error if it is not awaited below (a
                # cancellation, or the create's failure).
                listing.add_done_callback(_consume)
            break
        path, stat = created
        self.node = path.rsplit("/", 1)[1]
        self._token = stat.czxid
        children: List[str] = await listing
        while True:
            try:
                blocker = predecessor(self.node, children,
                                      self._BLOCKED_BY)
            except LookupError:
                raise SessionExpiredError("the lock node %s is gone" % path)
            if blocker is None:
                return True
            if not blocking:
                return False
            gone = asyncio.Event()
            stat_b = await client.exists(self._node_path(blocker),
                                         watch=lambda event: gone.set())
            if stat_b is not None:
                await gone.wait()
            children = await client.get_children(self.path)

    # -- release and cleanup ----------------------------------------------

    async def release(self) -> bool:
        """Release the lock (delete its node); whether it was held."""
        held = self.is_acquired
        self.is_acquired = False
        self.client.remove_listener(self._on_state)
        await self._remove_node()
        return held

    async def _remove_node(self) -> None:
        """Delete this lock's node, if it made one: in a task a
        cancellation of the caller does not stop."""
        create, node = self._create, self.node
        self._create = None
        self.node = None
        if create is None and node is None:
            return
        task = self._cleanup
        if task is None or task.done():
            task = asyncio.ensure_future(self._delete(create, node))
            self._cleanup = task
        await asyncio.shield(task)

    async def _delete(self, create: Optional["asyncio.Task[Any]"],
                      node: Optional[str]) -> None:
        client = self.client
        if node is None and create is not None:
            try:
                node = (await create)[0].rsplit("/", 1)[1]
            except BaseException:
                node = None  # unknown: found by prefix below
        while True:
            try:
                if node is None:
                    children = await until_session_ends(
                        lambda: client.get_children(self.path))
                    mine = [c for c in children or ()
                            if c.startswith(self.prefix)]
                    if not mine:
                        return
                    node = mine[0]
                path = self._node_path(node)
                await until_session_ends(lambda: client.delete(path))
                return
            except NoNodeError:
                if node is None:
                    return
                node = None  # look again by prefix: a retried create

    def _on_state(self, state: str) -> None:
        if state == KazooState.LOST and self.is_acquired:
            # The session's ephemeral node is gone with it (ZooKeeper
            # deletes a session's ephemerals when it expires).
            self.is_acquired = False
            self.node = None
            self._create = None
            self.client.remove_listener(self._on_state)
            self.lost.set()
            run_lost_callbacks(self, self._lost_callbacks)

    async def __aenter__(self) -> "Lock":
        await self.acquire()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.release()


def run_lost_callbacks(recipe: Any, callbacks: List[LostCallback]) -> None:
    """Call each of ``callbacks`` with ``recipe``; a coroutine returned runs
    as a task, an error is logged and does not stop the others."""
    for callback in list(callbacks):
        try:
            result = callback(recipe)
            if inspect.isawaitable(result):
                asyncio.ensure_future(result)
        except Exception:
            logging.getLogger("fastzk.aio").exception(
                "Error in a lost-lock callback")


def _consume(future: "asyncio.Future[Any]") -> None:
    if not future.cancelled():
        future.exception()
