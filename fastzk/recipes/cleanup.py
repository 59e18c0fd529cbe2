"""Guaranteed deletes: a node this client must remove is never abandoned.

A delete that fails for a connection reason (ConnectionLoss, an operation
timeout, a connection that is down) is recorded and retried whenever the
client is connected again, until the server confirms it (the delete
succeeds or the node is already gone) or the node cannot exist any more: an
ephemeral node dies with the session that created it, so the end of that
session (expiry, or the client closing it) settles the delete.  Curator's
``guaranteed()`` delete does the same; kazoo's lock swallows the error and
leaks the node (kazoo issue #732).

Two kinds of job:

- a path (:meth:`GuaranteedDeleter.delete`): the node is known;
- a ``(parent, prefix)`` pair (:meth:`GuaranteedDeleter.delete_prefixed`):
  a create whose reply was lost may or may not have made a node; if it did,
  its name starts with the creator's unique prefix.
"""

import logging
import threading
import time
from typing import (
    Dict,
    List,
    Optional,
    Tuple,
    Union,
)

from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.client import KazooClient
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState

from fastzk.kazooface.fastpath import FastPath, fast_path_of

__all__ = ["GuaranteedDeleter", "deleter_for"]

log = logging.getLogger("fastzk.cleanup")

# The request may not have reached the server, or its reply was lost:
# only the server can tell, so the job stays pending.
_RETRY_ERRORS = (ConnectionLoss, OperationTimeoutError)
# The session is over (expired, or the client closed it): its ephemeral
# nodes are gone or going; a persistent node's delete waits for a restart.
_SESSION_OVER = (SessionExpiredError, ConnectionClosedError)

#: A pending delete: a path, or a ``(parent, prefix)`` pair.
Job = Union[str, Tuple[str, str]]

_ATTRIBUTE = "_fastzk_guaranteed_deleter"
_CREATE_LOCK = threading.Lock()


def deleter_for(client: KazooClient) -> "GuaranteedDeleter":
    """The :class:`GuaranteedDeleter` of ``client`` (one per client)."""
    fast = fast_path_of(client)
    if fast is not None:
        return fast.deleter
    # Another client: the deleter is kept on it under fastzk's own name.
    deleter: Optional[GuaranteedDeleter] = getattr(client, _ATTRIBUTE, None)
    if deleter is None:
        with _CREATE_LOCK:
            deleter = getattr(client, _ATTRIBUTE, None)
            if deleter is None:
                deleter = GuaranteedDeleter(client)
                setattr(client, _ATTRIBUTE, deleter)
    return deleter


class _Owner(object):
    """Who owns a pending job's node: ephemeral or not, and the session id
    that created it when known."""

    __slots__ = ("ephemeral", "session")

    def __init__(self, ephemeral: bool, session: Optional[int]) -> None:
        self.ephemeral = ephemeral
        self.session = session


class GuaranteedDeleter(object):
    """Deletes nodes, retrying across reconnects until each delete is done.

    :param client: a :class:`kazoo.client.KazooClient` (fastzk's or
                   kazoo's own).
    """

    def __init__(self, client: KazooClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._pending: Dict[Job, _Owner] = {}
        self._running = False
        # fastzk's client only: bounds a synchronous delete by a deadline.
        self._fast: Optional[FastPath] = fast_path_of(client)
        client.add_listener(self._on_state)

    @property
    def pending(self) -> List[Job]:
        """Deletes not confirmed yet: paths, and ``(parent, prefix)`` pairs
        for nodes known only by their prefix."""
        with self._lock:
            return list(self._pending)

    def delete(self, path: str, ephemeral_session: Optional[int] = None,
               timeout: Optional[float] = None) -> bool:
        """Delete ``path`` now, or as soon as the connection allows.

        :param ephemeral_session: the session id that owns the node when it
            is ephemeral (its end then settles the delete), else None.
        :param timeout: None to delete on the calling thread (waiting for
            the server as long as the request takes); else the delete runs
            on a worker thread and the caller waits at most this long.
        :returns: True when the delete is settled, False when it is pending
            (it will be retried until it is).
        """
        return self._submit(path, _Owner(ephemeral_session is not None,
                                         ephemeral_session), timeout)

    def delete_prefixed(self, parent: str, prefix: str,
                        ephemeral: bool = True,
                        timeout: Optional[float] = None) -> bool:
        """Delete every child of ``parent`` whose name starts with ``prefix``.

        For a create whose reply was lost: the node, if the server made it,
        carries the creator's unique prefix (Curator's protected mode).
        Whatever session the create ran in, the job runs until the server
        answered it: a lost create can run no later than requests sent after
        it on the same client, so the job's own requests see its node.
        Takes ``timeout`` and returns like :meth:`delete`.
        """
        return self._submit((parent, prefix), _Owner(ephemeral, None),
                            timeout)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until nothing is pending; True if so within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._pending:
                remaining = None
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                self._settled.wait(remaining)
            return True

    # -- internals -------------------------------------------------------------

    def _submit(self, job: Job, owner: _Owner,
                timeout: Optional[float]) -> bool:
        with self._lock:
            self._pending[job] = owner
        if owner.ephemeral and self.client._stopped.is_set():
            # The client closed (or is closing) the session: the server
            # removes its ephemeral nodes.
            self._settle(job, owner)
            return True
        if not self.client.connected:
            return False  # CONNECTED schedules the retry
        fast = self._fast
        if timeout is not None and fast is None:
            # kazoo's client cannot bound a synchronous call: a worker
            # deletes, the caller waits for it no longer than ``timeout``.
            self._schedule()
            with self._lock:
                return self._settled.wait_for(
                    lambda: self._pending.get(job) is not owner,
                    max(0.0, timeout))
        try:
            if timeout is None:
                self._delete_job(job)
            else:
                # fastzk's client: delete on this thread, for at most
                # ``timeout``; a reply still due then leaves the job pending.
                assert fast is not None  # kazoo's client returned above
                with fast.bounded(time.monotonic() + max(0.0, timeout)):
                    self._delete_job(job)
        except _RETRY_ERRORS + (KazooTimeoutError,) as exc:
            log.info("Delete of %r deferred: %r", job, exc)
            if self.client.connected:
                self._schedule()
            return False
        except _SESSION_OVER as exc:
            if not owner.ephemeral:
                log.info("Delete of %r deferred: %r", job, exc)
                return False
        except Exception:
            log.exception("Guaranteed delete of %r failed", job)
        self._settle(job, owner)
        return True

    def _settle(self, job: Job, owner: _Owner) -> None:
        with self._lock:
            if self._pending.get(job) is owner:
                del self._pending[job]
            self._settled.notify_all()

    def _delete_job(self, job: Job) -> None:
        client = self.client
        if isinstance(job, str):
            try:
                client.delete(job)
            except NoNodeError:
                pass
            return
        parent, prefix = job
        try:
            children = client.get_children(parent)
        except NoNodeError:
            return
        base = parent if parent.endswith("/") else parent + "/"
        for child in children:
            if child.startswith(prefix):
                try:
                    client.delete(base + child)
                except NoNodeError:
                    pass

    def _on_state(self, state: str) -> bool:
        if state == KazooState.CONNECTED:
            self._schedule()
        return False

    def _schedule(self) -> None:
        with self._lock:
            if self._running or not self._pending:
                return
            self._running = True
        thread = threading.Thread(target=self._work,
                                  name="fastzk-guaranteed-delete", daemon=True)
        thread.start()

    def _work(self) -> None:
        try:
            while True:
                client_id = self.client.client_id
                if client_id is None:
                    return  # disconnected again; the next CONNECTED retries
                session = client_id[0]
                with self._lock:
                    todo = list(self._pending.items())
                if not todo:
                    return
                for job, owner in todo:
                    if (owner.session is not None
                            and owner.session != session):
                        # The owning session is gone, and its ephemeral
                        # node with it (ZooKeeper removes them on expiry).
                        self._settle(job, owner)
                        continue
                    try:
                        self._delete_job(job)
                    except _RETRY_ERRORS:
                        return  # the next CONNECTED retries
                    except _SESSION_OVER:
                        if not owner.ephemeral:
                            return
                    except Exception:
                        # Not a connection problem: retrying cannot help.
                        log.exception("Guaranteed delete of %r failed", job)
                    self._settle(job, owner)
        finally:
            with self._lock:
                self._running = False
                again = bool(self._pending) and self.client.connected
            if again:
                # A failure raced with a reconnect whose CONNECTED found the
                # worker still running: try again shortly.
                timer = threading.Timer(0.1, self._schedule)
                timer.daemon = True
                timer.start()
