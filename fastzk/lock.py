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
  guaranteed delete (:mod:`fastzk.cleanup`): a delete that meets a
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

import re
import threading
import time
import uuid
from types import TracebackType
from typing import Any, Callable, Iterable, List, Optional, Tuple, Type

from kazoo.exceptions import (
    CancelledError,
    ConnectionClosedError,
    ConnectionLoss,
    LockTimeout,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState, WatchedEvent
from kazoo.recipe.lock import Semaphore as _KazooSemaphore

from fastzk.cleanup import GuaranteedDeleter, deleter_for
from fastzk.fastpath import FastPath, fast_path_of
from fastzk.locknames import contender_pattern, in_lock_order, predecessor

__all__ = ["Lock", "ReadLock", "WriteLock", "Semaphore", "lock_path",
           "validate_path"]

# Errors after which an attempt is retried once the client is connected
# again (kazoo's lock retries the same ones through KazooRetry).
_RETRYABLE = (ConnectionLoss, OperationTimeoutError, SessionExpiredError)

# Serialises the lazy creation of Lock.lost's Event.
_MAKING_EVENTS = threading.Lock()

# After a timed acquire failed, how long past its deadline it may wait for
# the server to confirm the cleanup delete (the delete itself is guaranteed
# either way; this only spares callers a node still visible on return).
_CLEANUP_GRACE = 0.1


def validate_path(path: str) -> None:
    """Raise ValueError unless ``path`` is a valid absolute ZooKeeper path.

    ZooKeeper's PathUtils.validatePath: absolute, no empty, ``.`` or ``..``
    component, no trailing slash (except the root), none of the characters
    the server refuses (NUL, controls, surrogates and private use).
    """
    if not isinstance(path, str):
        raise TypeError("lock path must be a str, not %s" % type(path).__name__)
    if not path.startswith("/"):
        raise ValueError("invalid ZooKeeper path %r: must start with /" % path)
    if path == "/":
        return
    if path.endswith("/"):
        raise ValueError("invalid ZooKeeper path %r: trailing /" % path)
    if "//" in path or "/." in path and _RELATIVE_RE.search(path):
        raise ValueError("invalid ZooKeeper path %r: empty or relative "
                         "component" % path)
    if _BAD_CHAR_RE.search(path):
        raise ValueError("invalid ZooKeeper path %r: control character"
                         % path)


def lock_path(path: str) -> str:
    """The path a lock recipe's nodes go under, normalised as kazoo's client
    normalises every path it sends (``kazoo.protocol.paths.normpath``).

    kazoo's recipes take any str: ``"x"`` is ``"/x"``, ``"/a/"`` is
    ``"/a"``, ``"/a//b"`` is ``"/a/b"`` and ``""`` is the root (below the
    chroot, if any), so the same string puts kazoo's nodes and fastzk's in
    the same place.

    :raises: TypeError if ``path`` is not a str; ValueError for a path
             ZooKeeper refuses: a ``.`` or ``..`` component (kazoo's client
             refuses those with the same error before sending anything) or
             a character the server refuses (NUL, controls, surrogates,
             private use, and characters beyond U+FFFF, which Java sees as
             surrogate pairs).
    """
    if not isinstance(path, str):
        raise TypeError("lock path must be a str, not %s" % type(path).__name__)
    if _BAD_CHAR_RE.search(path):
        raise ValueError("invalid ZooKeeper path %r: a character ZooKeeper "
                         "refuses" % path)
    if (path[:1] != "/" or path[-1:] == "/" or "//" in path
            or "/." in path):
        return _normalised(path)
    return path


def _normalised(path: str) -> str:
    components = [part for part in path.split("/") if part]
    for part in components:
        if part == "." or part == "..":
            raise ValueError("invalid ZooKeeper path %r: relative paths not "
                             "allowed" % path)
    return "/" + "/".join(components)


# PathUtils.validatePath's refused characters and relative components.
_BAD_CHAR_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\uf8ff\ufff0-\U0010ffff]")
_RELATIVE_RE = re.compile(r"/\.\.?(?:/|$)")


class _OwnNodeGone(Exception):
    """Our contender node is not among the children (its session ended)."""


class _DeadlinePassed(Exception):
    """The overall deadline passed while a request was outstanding."""


class Lock(object):
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

    def _new_prefix(self) -> None:
        # A cleanup of a lost create may still be pending under the old
        # prefix; new nodes must not carry it, or that cleanup (matching by
        # prefix) would delete them.  Drawn when first needed: os.urandom
        # releases the GIL, a hand-off per Lock object that a failed
        # attempt (which creates nothing) need not pay.
        self._prefix: Optional[str] = None

    @property
    def prefix(self) -> str:
        """The unique start of this lock's node names (``<uuid hex>__lock__``)."""
        if self._prefix is None:
            self._prefix = uuid.uuid4().hex + self._NODE_NAME
        return self._prefix

    @prefix.setter
    def prefix(self, value: str) -> None:
        self._prefix = value

    @property
    def create_path(self) -> str:
        """The path this lock's node is created with (``path/prefix``)."""
        return self._base + self.prefix

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

    def _acquire_retrying(self, blocking: bool, deadline: Optional[float],
                          timeout: Optional[float], ephemeral: bool) -> bool:
        delay = 0.02
        while True:
            try:
                return self._attempt(blocking, deadline, timeout, ephemeral)
            except _DeadlinePassed:
                return False
            except ConnectionClosedError:
                raise  # a SessionExpiredError subclass, but final
            except _RETRYABLE:
                if self.cancelled:
                    raise CancelledError()
                if not self._pause(deadline, delay):
                    return False
                delay = min(delay * 2, 1.0)

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
        may answer without a round trip (see fastzk.childview); only for
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

    def _attempt(self, blocking: bool, deadline: Optional[float],
                 timeout: Optional[float], ephemeral: bool) -> bool:
        client = self.client
        # A timeout of 0 or -1 is one try (kazoo's is): its requests are not
        # cut short; only the wait for a predecessor is.
        calls = deadline if timeout is None or timeout > 0 else None
        children: Optional[List[str]] = None
        if self.cancelled:
            raise CancelledError()
        if self.node is None and not self.create_tried and not blocking:
            children = self._children(calls, watched=True)
            if children and self._any_contender(children):
                return False  # held: nothing written
        if self.node is None and self.create_tried:
            # A create whose reply was lost may have succeeded.
            if children is None:
                children = self._children(calls)
            node = self._find_node(children or ())
            if node is not None:
                stat = self._call(calls, "exists", self._base + node)
                if stat is not None:
                    self.node = node
                    self._token = stat.czxid
                    self._session_id = self._current_session(ephemeral)
        # The children, if read together with the create.
        listed: Optional[List[str]] = None
        if self.node is None:
            self.create_tried = True
            created: Optional[str] = None
            fast = self._fast
            if fast is not None:
                try:
                    created, stat, listed = self._call_fast(
                        calls, fast.create_and_list, self.create_path,
                        self.data, ephemeral)
                except NoNodeError:
                    pass  # no lock path yet: created below, with it
            if created is None:
                created, stat = self._call(
                    calls, "create", self.create_path, self.data,
                    ephemeral=ephemeral, sequence=True, makepath=True,
                    include_data=True)
            self.assured_path = True
            self.node = created[created.rfind("/") + 1:]
            self._token = stat.czxid
            self._session_id = self._current_session(ephemeral)
        while True:
            self.wake_event.clear()
            if self.cancelled:
                raise CancelledError()
            try:
                predecessor = self._get_predecessor(self.node, calls,
                                                    listed)
                listed = None
            except _OwnNodeGone:
                # The session that held our node ended: start over.
                self.node = None
                self.create_tried = False
                raise SessionExpiredError()
            if predecessor is None:
                return True
            if not blocking:
                return False
            remaining = None
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LockTimeout("Failed to acquire lock on %s after %s "
                                      "seconds" % (self.path, timeout))
            client.add_listener(self._watch_session)
            try:
                # get, not exists: exists on a vanished node would leave a
                # watch for its creation, which never comes.
                self._call(deadline, "get", self._base + predecessor,
                           self._watch_predecessor)
            except NoNodeError:
                continue  # the predecessor left already
            except _DeadlinePassed:
                raise LockTimeout("Failed to acquire lock on %s after %s "
                                  "seconds" % (self.path, timeout))
            else:
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                self.wake_event.wait(remaining)
                if not self.wake_event.is_set():
                    raise LockTimeout("Failed to acquire lock on %s after "
                                      "%s seconds" % (self.path, timeout))
            finally:
                client.remove_listener(self._watch_session)

    def _current_session(self, ephemeral: bool) -> Optional[int]:
        client_id: Optional[Tuple[int, bytes]] = self.client.client_id
        return client_id[0] if ephemeral and client_id else None

    def _watch_session(self, state: str) -> bool:
        self.wake_event.set()
        return True

    def _watch_predecessor(self, event: WatchedEvent) -> None:
        self.wake_event.set()

    def _any_contender(self, children: Iterable[str]) -> bool:
        search = self._contenders_re.search
        for child in children:
            if search(child) is not None:
                return True
        return False

    def _get_predecessor(self, node: str, deadline: Optional[float] = None,
                         children: Optional[Iterable[str]] = None
                         ) -> Optional[str]:
        """The contender just before ``node``, or None when ``node`` wins.

        Contenders are compared by their sequence number as an integer.
        ``children``: the lock path's children if already read (after our
        create); read now otherwise.
        """
        if children is None:
            children = self._children(deadline) or ()
        try:
            return predecessor(node, children, self._exclude_names)
        except LookupError:
            raise _OwnNodeGone()

    def _find_node(self, children: Iterable[str]) -> Optional[str]:
        for child in children:
            if child.startswith(self.prefix):
                return child
        return None

    def _cleanup(self, deadline: Optional[float] = None) -> None:
        """Remove our node after a failed attempt, whatever it takes."""
        node = self.node
        self.node = None
        tried = self.create_tried
        self.create_tried = False
        timeout = None
        if deadline is not None:
            timeout = max(deadline - time.monotonic(), _CLEANUP_GRACE)
        if node is not None:
            session = self._session_id if self._ephemeral else None
            self._deleter.delete(self._base + node, session, timeout)
        elif tried:
            # The create's reply was lost: the node may exist under our
            # unique prefix.
            settled = self._deleter.delete_prefixed(
                self._path, self.prefix, self._ephemeral, timeout)
            if not settled:
                self._new_prefix()

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

