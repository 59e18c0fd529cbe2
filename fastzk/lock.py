"""Locks: kazoo's lock recipe, made cheap to fail and impossible to leak.

The nodes are kazoo's (``<path>/<uuid hex>__lock__<10-digit sequence>``,
``__rlock__`` for readers, ephemeral sequential, data = the identifier), so
kazoo and fastzk lockers on one path exclude each other.  What differs:

- A non-blocking attempt first reads the children.  When a contender that
  would precede it exists it returns False having written nothing; only a
  lock that looks free costs a create (and, if another contender won the
  race, a delete).
- On fastzk's client the create and the read of the children that decides
  the lock go out together and cost one round trip, not two.
- Every node this lock creates and no longer needs is deleted with a
  guaranteed delete (:mod:`fastzk.recipes.cleanup`): a delete that meets a
  connection loss is retried on reconnect until the server confirms it.
  A create whose reply was lost is found again by its uuid prefix.
- Sequence numbers are compared as integers (kazoo #730), and a blocking
  ``acquire(timeout=T)`` returns within T overall, even while the
  connection is down or frozen.
- The lock follows its session: while SUSPENDED it is not known to be held
  (:attr:`Lock.held` is False), and when the session is lost
  :attr:`Lock.is_acquired` turns False and the lost callbacks run.
- :attr:`Lock.fencing_token` is the czxid of the winning node, a number
  that only grows between successive holders of one lock path.

They work with fastzk's client and with a plain
:class:`kazoo.client.KazooClient` alike.
"""

import threading
import time
from types import TracebackType
from typing import Callable, Iterable, List, Optional, Type

from kazoo.client import KazooClient
from kazoo.exceptions import CancelledError, LockTimeout, NoNodeError
from kazoo.protocol.states import KazooState
from kazoo.recipe.lock import Semaphore as _KazooSemaphore

from fastzk.recipes.cleanup import GuaranteedDeleter, deleter_for
from fastzk.kazooface.fastpath import FastPath, fast_path_of
from fastzk.recipes.lockattempt import _LockAttempt
from fastzk.recipes.locknames import contender_pattern, in_lock_order
# The rule the attempts (fastzk.recipes.lockattempt) order contenders by, named
# here with the other rules of the node names this module uses.
from fastzk.recipes.locknames import predecessor  # noqa: F401
from fastzk.recipes.lockpaths import lock_path, validate_path

__all__ = ["Lock", "ReadLock", "WriteLock", "Semaphore", "lock_path",
           "validate_path"]

# Serialises the lazy creation of Lock.lost's Event.
_MAKING_EVENTS = threading.Lock()


class Lock(_LockAttempt):
    """An exclusive lock, a drop-in for :class:`kazoo.recipe.lock.Lock`.

    Example usage:

    .. code-block:: python

        from fastzk import KazooClient, Lock

        zk = KazooClient()
        zk.start()
        lock = Lock(zk, "/lockpath", "my-identifier")
        if lock.acquire(blocking=False):
            try:
                ...  # do the work
            finally:
                lock.release()

    Not re-entrant: a second blocking ``acquire`` on a held lock waits for
    a release (as kazoo's does).

    :param client: a :class:`fastzk.KazooClient` or
                   :class:`kazoo.client.KazooClient`.
    :param path: the lock path (created if missing).
    :param identifier: stored in the contender node, shown by
                       :meth:`contenders`.
    :param extra_lock_patterns: other node-name markers that count as
                                contenders (e.g. another library's lock).
    :raises: TypeError if ``path`` is not a str, ValueError for a path
             ZooKeeper refuses (see :func:`lock_path`).
    """

    _NODE_NAME = "__lock__"
    _EXCLUDE_NAMES: List[str] = ["__lock__"]

    def __init__(self, client: KazooClient, path: str,
                 identifier: Optional[str] = None,
                 extra_lock_patterns: Iterable[str] = ()) -> None:
        # ``path`` stays the caller's string, as in kazoo (its messages name
        # it); the requests use the normalised one, the root's children
        # being "/<name>", every other path's "<path>/<name>".
        normal = lock_path(path)
        self._path = normal
        self._base = normal if normal == "/" else normal + "/"
        self.client = client
        self.path = path
        self._exclude_names = set(self._EXCLUDE_NAMES + list(extra_lock_patterns))
        self._contenders_re = contender_pattern(self._exclude_names)
        self.data = str(identifier or "").encode("utf-8")
        self.node: Optional[str] = None
        self.wake_event = client.handler.event_object()
        self._new_prefix()
        self.create_tried = False
        self.is_acquired = False
        self.assured_path = False
        self.cancelled = False
        self._token: Optional[int] = None
        self._ephemeral = True
        self._session_id: Optional[int] = None
        # The Event behind `lost`, made when first needed.
        self._lost: Optional[threading.Event] = None
        self._lost_callbacks: List[Callable[[Lock], object]] = []
        self._acquire_method_lock = threading.Lock()
        # fastzk's client only: its one-round-trip operations.
        self._fast: Optional[FastPath] = fast_path_of(client)
        self._deleter: GuaranteedDeleter = deleter_for(client)

    # -- state ----------------------------------------------------------------

    @property
    def held(self) -> bool:
        """True while the lock is acquired *and* known to be held.

        False while the session is SUSPENDED: until the connection is back
        nobody can tell whether the server still has the session (and our
        node).  Curator gives lock holders the same advice.  Read from the
        client's connection state, so it turns False the moment the
        connection drops, before any listener has run.
        """
        if not self.is_acquired:
            return False
        connected: bool = self.client.connected
        return connected

    @property
    def fencing_token(self) -> Optional[int]:
        """The czxid of this holder's node while the lock is acquired, else
        None.  It grows between successive holders of one lock path, so a
        resource can refuse writes carrying a smaller token than it saw."""
        return self._token if self.is_acquired else None

    @property
    def lost(self) -> threading.Event:
        """A :class:`threading.Event` set when a held lock is lost with its
        session; cleared on the next successful acquire."""
        if self._lost is None:
            with _MAKING_EVENTS:  # the user's thread or the event thread
                if self._lost is None:
                    self._lost = threading.Event()
        return self._lost

    def on_lost(self, callback: Callable[["Lock"], object]) -> None:
        """Call ``callback(lock)`` when a held lock is lost with its session.

        Callbacks run on the client's event thread and must not block.
        """
        self._lost_callbacks.append(callback)

    def _watch_state(self, state: str) -> bool:
        if state == KazooState.LOST:
            if self.is_acquired and self._ephemeral:
                self.is_acquired = False
                self.node = None
                self.lost.set()
                for callback in list(self._lost_callbacks):
                    try:
                        callback(self)
                    except Exception:  # pragma: no cover - user code
                        pass
            self.wake_event.set()
        return False

    # -- acquire / release ------------------------------------------------------

    def cancel(self) -> None:
        """Cancel a pending lock acquire."""
        self.cancelled = True
        self.wake_event.set()

    def acquire(self, blocking: bool = True, timeout: Optional[float] = None,
                ephemeral: bool = True) -> bool:
        """Acquire the lock. By default blocks and waits forever.

        :param blocking: block until the lock is obtained, or return at once.
        :param timeout: give up after this many seconds, counted from the
                        call (every request and wait included).  0 or -1
                        (blocking mode) is one try, as in kazoo: its
                        requests are not cut short, and a held lock raises
                        LockTimeout at once.
        :param ephemeral: use an ephemeral node (the default); a persistent
                          lock node survives the session and must be
                          released explicitly.
        :returns: whether the lock was acquired.
        :raises: :exc:`~kazoo.exceptions.LockTimeout` if the lock was still
                 held by another contender after ``timeout`` seconds
                 (blocking mode; a deadline that passes while the
                 connection is down returns False, as kazoo's retry does),
                 :exc:`~kazoo.exceptions.CancelledError` after
                 :meth:`cancel`, and the client's errors that are not
                 connection losses (e.g.
                 :exc:`~kazoo.exceptions.ConnectionClosedError`).
                 ValueError, as kazoo's (whose checks these are, made by
                 :meth:`threading.Lock.acquire`), for a ``timeout`` other
                 than None or -1 in non-blocking mode, or a negative one
                 other than -1.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._acquire_method_lock.acquire(
                blocking, -1 if timeout is None else timeout):
            return False
        try:
            if self.is_acquired:
                # Not re-entrant: like kazoo, a second acquire waits for a
                # release that this holder would have to make.
                if not blocking:
                    return False
                while self.is_acquired:
                    if self.cancelled:
                        self.cancelled = False
                        raise CancelledError()
                    if not self._pause(deadline, 0.1):
                        return False
            self._ephemeral = ephemeral
            try:
                gotten = self._acquire_retrying(blocking, deadline, timeout,
                                                ephemeral)
            except BaseException:
                self._cleanup(deadline)
                self.cancelled = False
                raise
            if gotten:
                self.is_acquired = True
                if self._lost is not None:
                    self._lost.clear()
                self.client.add_listener(self._watch_state)
            else:
                self._cleanup(deadline)
            return gotten
        finally:
            self._acquire_method_lock.release()

    def release(self) -> bool:
        """Release the lock immediately.

        :returns: True if the lock was held and is now released, False if
                  it was not held.  The node's delete is guaranteed: if the
                  connection is down it completes after reconnecting.
        """
        if not self.is_acquired:
            return False
        node = self.node
        session = self._session_id if self._ephemeral else None
        self.is_acquired = False
        self.node = None
        self.create_tried = False
        self.client.remove_listener(self._watch_state)
        if node is not None:
            self._deleter.delete(self._base + node, session)
        return True

    def contenders(self) -> List[str]:
        """Return an ordered list of the current contenders' identifiers,
        ordered by sequence number compared as an integer.

        .. note::
            A contender that set no identifier appears as a blank string.
        """
        children = self._children(None) or ()
        names = self._exclude_names | {self._NODE_NAME}
        nodes = [c.node for c in in_lock_order(children, names)]
        contenders: List[str] = []
        for node in nodes:
            try:
                data, _ = self.client.get(self._base + node)
            except NoNodeError:
                continue
            if data is not None:
                contenders.append(data.decode("utf-8"))
        return contenders

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc_value: Optional[BaseException],
                 traceback: Optional[TracebackType]) -> None:
        self.release()


class WriteLock(Lock):
    """The write side of a shared lock (kazoo's ``WriteLock``): blocked by
    any reader or writer."""

    _NODE_NAME = "__lock__"
    _EXCLUDE_NAMES = ["__lock__", "__rlock__"]


class ReadLock(Lock):
    """The read side of a shared lock (kazoo's ``ReadLock``): blocked only
    by writers; many readers may hold it together."""

    _NODE_NAME = "__rlock__"
    _EXCLUDE_NAMES = ["__lock__"]


class Semaphore(_KazooSemaphore):
    """kazoo's :class:`~kazoo.recipe.lock.Semaphore`; on a fastzk client its
    internal lock is fastzk's :class:`Lock`.

    Its errors name the semaphore's path, never its internal lock's
    (``<path>-__lock__``).

    :raises: TypeError if ``path`` is not a str, ValueError for a path
             ZooKeeper refuses (see :func:`lock_path`).
    """

    def __init__(self, client: KazooClient, path: str,
                 identifier: Optional[str] = None,
                 max_leases: int = 1) -> None:
        lock_path(path)
        super().__init__(client, path, identifier, max_leases)

    def _inner_acquire(self, blocking: bool,
                       timeout: Optional[float] = None) -> bool:
        try:
            acquired: bool = super()._inner_acquire(blocking, timeout)
        except LockTimeout:
            # Also raised by the internal lock, naming its own path.
            raise LockTimeout("Failed to acquire semaphore on %s after %s "
                              "seconds" % (self.path, timeout)) from None
        return acquired
