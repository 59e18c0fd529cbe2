"""The semaphore of the asyncio client: kazoo's ``Semaphore`` nodes, so
kazoo, fastzk thread and asyncio holders of one semaphore count against
the same leases.

As kazoo's recipe: the semaphore node ``path`` holds ``max_leases`` as its
data and one ephemeral child ``<uuid hex>`` per lease; a contender takes
the exclusive lock ``<path>-__lock__`` (a :class:`fastzk.aio.lock.Lock`),
and while holding it counts the leases and creates its own when fewer
than ``max_leases`` exist.  Only the lock holder watches the leases, so a
lease's release wakes one waiter, not all.

What it adds:

- a non-blocking attempt on a full semaphore (or one whose lock is held)
  reads and returns False having written nothing;
- a lease that was created (or may have been, its reply lost) by an
  attempt that then failed or was cancelled is deleted by a shielded
  task that retries across reconnects;
- :attr:`Semaphore.lost` and :meth:`Semaphore.on_lost` report a lease
  lost with its session, as the locks do.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any, List, Optional

from kazoo.exceptions import (
    NodeExistsError,
    NoNodeError,
    SessionExpiredError,
)
from kazoo.protocol.states import KazooState, ZnodeStat

from fastzk.aio.lock import Lock, LostCallback, run_lost_callbacks
from fastzk.aio.retry import retry_cut_attempts, until_session_ends, within
from fastzk.recipes.locknames import EXCLUSIVE
from fastzk.recipes.lockpaths import lock_path

if TYPE_CHECKING:
    from fastzk.aio.client import AsyncClient

__all__ = ["Semaphore"]


class Semaphore(object):
    """A semaphore on ``path`` with ``max_leases`` leases (kazoo's
    ``Semaphore`` nodes).  Not re-entrant: ``acquire`` on a held semaphore
    returns True at once, as kazoo's does.

    :param client: the :class:`~fastzk.aio.AsyncClient`.
    :param path: the semaphore path.
    :param identifier: stored as the lease node's data, shown by
                       :meth:`lease_holders`.
    :param max_leases: how many holders at once; stored as the semaphore
                       node's data and checked against it on acquire.
    :raises: TypeError if ``path`` is not a str, ValueError for a path
             ZooKeeper refuses.

    ``async with semaphore:`` acquires (blocking) and releases.
    """

    def __init__(self, client: "AsyncClient", path: str,
                 identifier: Optional[str] = "",
                 max_leases: int = 1) -> None:
        self.client = client
        self.path = lock_path(path)
        self.identifier = identifier or ""
        self.data = self.identifier.encode("utf-8")
        self.max_leases = max_leases
        #: The lease node's name (kazoo's: a uuid, one per semaphore object).
        self.lease = uuid.uuid4().hex
        self.create_path = self.path.rstrip("/") + "/" + self.lease
        # kazoo's name, made from the caller's string.
        self.lock_path = path + "-" + EXCLUSIVE
        #: Whether a lease is held (False again once its session is lost).
        self.is_acquired = False
        #: Set when the session holding the lease was lost.
        self.lost = asyncio.Event()
        self.assured_path = False
        # Whether our lease node may exist, and the create that made it.
        self._made = False
        self._create: Optional["asyncio.Task[Any]"] = None
        self._cleanup: Optional["asyncio.Task[None]"] = None
        self._lost_callbacks: List[LostCallback] = []

    @property
    def held(self) -> bool:
        """Whether a lease is held and its session connected."""
        return self.is_acquired and self.client.state == KazooState.CONNECTED

    def on_lost(self, callback: LostCallback) -> None:
        """Call ``callback(semaphore)`` when a held lease is lost with its
        session (the locks' :meth:`~fastzk.aio.lock.Lock.on_lost`)."""
        self._lost_callbacks.append(callback)

    # -- acquire -----------------------------------------------------------

    async def acquire(self, blocking: bool = True,
                      timeout: Optional[float] = None) -> bool:
        """Acquire a lease; whether one was acquired.

        :param blocking: wait until a lease is free, or return at once.
        :param timeout: with ``blocking``, raise
                        :exc:`~kazoo.exceptions.LockTimeout` after this
                        many seconds.
        :raises: ValueError if the semaphore node holds another
                 ``max_leases`` (before anything is written).

        An attempt cut by a connection loss is made again once connected
        (within ``timeout``), as the locks do.
        """
        if self.is_acquired:
            return True
        gotten = await retry_cut_attempts(
            lambda remaining: self._attempt(blocking, remaining, timeout),
            timeout, "semaphore on %s" % self.path)
        if not gotten:
            return False
        self.is_acquired = True
        self.lost.clear()
        self.client.add_listener(self._on_state)
        return True

    async def _attempt(self, blocking: bool, remaining: Optional[float],
                       timeout: Optional[float]) -> bool:
        """One attempt: whether it got a lease; its lease node is deleted
        when it did not (or raised)."""
        if self._cleanup is not None:
            await asyncio.shield(self._cleanup)
        try:
            gotten = await within(self._contend(blocking), remaining, timeout,
                                  "semaphore on %s" % self.path)
        except BaseException:
            await self._remove_lease()
            raise
        if not gotten:
            await self._remove_lease()
        return gotten

    async def _contend(self, blocking: bool) -> bool:
        leases = await self._read_leases()
        if not blocking and leases is not None \
                and len(leases) >= self.max_leases:
            return False  # full: nothing written
        if leases is None:
            await self._make_path()
        lock = Lock(self.client, self.lock_path, self.identifier)
        if not await lock.acquire(blocking):
            return False  # another contender counts the leases: nothing written
        try:
            return await self._take_lease(lock, blocking)
        finally:
            await lock.release()

    async def _take_lease(self, lock: Lock, blocking: bool) -> bool:
        client = self.client
        while True:
            changed = asyncio.Event()
            children: List[str] = await client.get_children(
                self.path, watch=lambda event: changed.set())
            if self.lease in children:
                self._made = True
                return True  # ours already (an earlier create's reply lost)
            if len(children) < self.max_leases:
                self._made = True
                create = asyncio.ensure_future(client.create(
                    self.create_path, self.data, ephemeral=True))
                self._create = create
                await asyncio.shield(create)
                return True
            if not blocking:
                return False
            await changed.wait()
            if not lock.is_acquired:
                # The session ended (its state LOST is reported before the
                # watches it cleared fire): the lock no longer guards the
                # count.
                raise SessionExpiredError("the semaphore lock %s is gone"
                                          % self.lock_path)

    async def _read_leases(self) -> Optional[List[str]]:
        """The lease nodes, or None when the semaphore node is missing;
        checks its ``max_leases`` (data and children read in one round
        trip)."""
        got: List[Any] = await asyncio.gather(
            self.client.get(self.path), self.client.get_children(self.path),
            return_exceptions=True)
        for result in got:
            if isinstance(result, NoNodeError):
                return None
            if isinstance(result, BaseException):
                raise result
        data_stat: "tuple[bytes, ZnodeStat]" = got[0]
        self._check_leases(data_stat[0])
        self.assured_path = True
        children: List[str] = got[1]
        return children

    async def _make_path(self) -> None:
        try:
            await self.client.create(
                self.path, str(self.max_leases).encode("utf-8"),
                makepath=True)
        except NodeExistsError:
            data, _ = await self.client.get(self.path)
            self._check_leases(data)
        self.assured_path = True

    def _check_leases(self, data: Optional[bytes]) -> None:
        # kazoo's rule: non-numeric data is someone else's, not checked.
        try:
            leases = int((data or b"").decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return
        if leases != self.max_leases:
            raise ValueError("Inconsistent max leases: %s, expected: %s"
                             % (leases, self.max_leases))

    # -- release and cleanup ----------------------------------------------

    async def release(self) -> bool:
        """Release the lease (delete its node); whether one was held."""
        held = self.is_acquired
        self.is_acquired = False
        self.client.remove_listener(self._on_state)
        await self._remove_lease()
        return held

    async def _remove_lease(self) -> None:
        create, made = self._create, self._made
        self._create = None
        self._made = False
        if not made:
            return
        task = self._cleanup
        if task is None or task.done():
            task = asyncio.ensure_future(self._delete(create))
            self._cleanup = task
        await asyncio.shield(task)

    async def _delete(self, create: Optional["asyncio.Task[Any]"]) -> None:
        try:
            if create is not None:
                await create
        except BaseException:
            pass  # its reply lost or refused: the delete below settles it
        try:
            await until_session_ends(
                lambda: self.client.delete(self.create_path))
        except NoNodeError:
            pass

    def _on_state(self, state: str) -> None:
        if state == KazooState.LOST and self.is_acquired:
            # ZooKeeper deletes a session's ephemeral nodes when it ends.
            self.is_acquired = False
            self._create = None
            self._made = False
            self.client.remove_listener(self._on_state)
            self.lost.set()
            run_lost_callbacks(self, self._lost_callbacks)

    async def lease_holders(self) -> List[str]:
        """The identifiers of the current lease holders, unordered (a holder
        without one appears as a blank string)."""
        try:
            children: List[str] = await self.client.get_children(self.path)
        except NoNodeError:
            return []
        holders = []
        for child in children:
            try:
                data, _ = await self.client.get(self.path.rstrip("/") + "/"
                                                + child)
            except NoNodeError:
                continue
            holders.append((data or b"").decode("utf-8"))
        return holders

    async def __aenter__(self) -> "Semaphore":
        await self.acquire()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.release()
