"""One acquire attempt of a lock: its contender node (named by a unique
prefix, created or found again after a lost reply), the wait for the
contender just before it, and the guaranteed delete of that node when
the attempt fails."""

import time
import uuid
from typing import Iterable, List, Optional, Pattern, Set, Tuple

from kazoo.exceptions import (
    CancelledError,
    ConnectionClosedError,
    ConnectionLoss,
    LockTimeout,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.protocol.states import WatchedEvent

from fastzk.recipes.cleanup import GuaranteedDeleter
from fastzk.recipes.lockcalls import _DeadlineCalls, _DeadlinePassed
from fastzk.recipes.locknames import predecessor

# Errors after which an attempt is retried once the client is connected
# again (kazoo's lock retries the same ones through KazooRetry).
_RETRYABLE = (ConnectionLoss, OperationTimeoutError, SessionExpiredError)

# After a timed acquire failed, how long past its deadline it may wait for
# the server to confirm the cleanup delete (the delete itself is guaranteed
# either way; this only spares callers a node still visible on return).
_CLEANUP_GRACE = 0.1


class _OwnNodeGone(Exception):
    """Our contender node is not among the children (its session ended)."""


class _LockAttempt(_DeadlineCalls):
    """The attempts of a :class:`fastzk.lock.Lock` to acquire it, and the
    cleanup after a failed one."""

    # Set by fastzk.lock.Lock (its class, then its __init__).
    _NODE_NAME: str
    _base: str
    _exclude_names: Set[str]
    _contenders_re: "Pattern[str]"
    path: str
    data: bytes
    node: Optional[str]
    create_tried: bool
    assured_path: bool
    cancelled: bool
    _token: Optional[int]
    _ephemeral: bool
    _session_id: Optional[int]
    _deleter: GuaranteedDeleter

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
