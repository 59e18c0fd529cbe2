"""Guaranteed deletes: a node this client must remove is never abandoned.

A delete that fails for a connection reason (ConnectionLoss, a closed or
suspended connection) is recorded and retried whenever the client is
connected again, until the server confirms it (the delete succeeds or the
node is already gone) or the node cannot exist any more: an ephemeral node
dies with the session that created it, so a lost session settles it.
Curator's ``guaranteed()`` delete does the same; kazoo's lock swallows the
error and leaks the node (kazoo issue #732).
"""

import logging
import threading

from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.protocol.states import KazooState

__all__ = ["GuaranteedDeleter", "deleter_for"]

log = logging.getLogger(__name__)

_CONNECTION_ERRORS = (
    ConnectionLoss,
    ConnectionClosedError,
    OperationTimeoutError,
    SessionExpiredError,
)

_ATTRIBUTE = "_fastzk_guaranteed_deleter"
_CREATE_LOCK = threading.Lock()


def deleter_for(client):
    """The :class:`GuaranteedDeleter` of ``client`` (one per client)."""
    deleter = getattr(client, _ATTRIBUTE, None)
    if deleter is None:
        with _CREATE_LOCK:
            deleter = getattr(client, _ATTRIBUTE, None)
            if deleter is None:
                deleter = GuaranteedDeleter(client)
                setattr(client, _ATTRIBUTE, deleter)
    return deleter


class GuaranteedDeleter(object):
    """Deletes nodes, retrying across reconnects until each delete is done.

    :param client: a started :class:`kazoo.client.KazooClient` (fastzk's or
                   kazoo's own).
    """

    def __init__(self, client):
        self.client = client
        self._lock = threading.Lock()
        # path -> session id that owned the ephemeral node, or None for a
        # persistent node.
        self._pending = {}
        self._retrying = False
        client.add_listener(self._on_state)

    @property
    def pending(self):
        """Deletes not confirmed yet: paths, and ``(parent, prefix)`` pairs
        for nodes known only by their prefix."""
        with self._lock:
            return list(self._pending)

    def delete(self, path, ephemeral_session=None):
        """Delete ``path`` now, or as soon as the connection allows.

        :param ephemeral_session: the session id that owns the node when it
            is ephemeral (its expiry then settles the delete), else None.
        :returns: True when the node is known to be gone now, False when the
            delete was deferred.
        """
        try:
            self.client.delete(path)
        except NoNodeError:
            return True
        except _CONNECTION_ERRORS as exc:
            log.info("Delete of %s deferred: %r", path, exc)
            with self._lock:
                self._pending[path] = ephemeral_session
            if self.client.connected:
                self._schedule()
            return False
        return True

    def delete_prefixed(self, parent, prefix, ephemeral_session=None):
        """Delete every child of ``parent`` whose name starts with ``prefix``.

        For a create whose reply was lost: the node, if the server made it,
        carries the creator's unique prefix (Curator's protected mode).
        Deferred like :meth:`delete` when the connection is down.
        """
        job = (parent, prefix)
        try:
            self._delete_job(job)
        except _CONNECTION_ERRORS as exc:
            log.info("Delete of %s/%s* deferred: %r", parent, prefix, exc)
            with self._lock:
                self._pending[job] = ephemeral_session
            if self.client.connected:
                self._schedule()
            return False
        return True

    def _delete_job(self, job):
        if isinstance(job, str):
            try:
                self.client.delete(job)
            except NoNodeError:
                pass
            return
        parent, prefix = job
        try:
            children = self.client.get_children(parent)
        except NoNodeError:
            return
        for child in children:
            if child.startswith(prefix):
                try:
                    self.client.delete(parent + "/" + child)
                except NoNodeError:
                    pass

    def _on_state(self, state):
        if state == KazooState.CONNECTED:
            self._schedule()
        return False

    def _schedule(self):
        with self._lock:
            if self._retrying or not self._pending:
                return
            self._retrying = True
        thread = threading.Thread(target=self._retry_pending,
                                  name="fastzk-guaranteed-delete", daemon=True)
        thread.start()

    def _retry_pending(self):
        try:
            client = self.client
            client_id = client.client_id
            if client_id is None:
                return  # disconnected again; the next CONNECTED retries
            session = client_id[0]
            with self._lock:
                todo = list(self._pending.items())
            for path, owner in todo:
                if owner is not None and owner != session:
                    # The owning session is gone, and its ephemeral node
                    # with it (ZooKeeper removes them on expiry).
                    with self._lock:
                        self._pending.pop(path, None)
                    continue
                try:
                    self._delete_job(path)
                except _CONNECTION_ERRORS:
                    continue  # next CONNECTED retries it
                except Exception:
                    # Not a connection problem: retrying cannot help.
                    log.exception("Guaranteed delete of %s failed", path)
                with self._lock:
                    self._pending.pop(path, None)
        finally:
            with self._lock:
                self._retrying = False
                again = bool(self._pending) and self.client.connected
            if again:
                # A failure raced with a reconnect; try once more shortly.
                timer = threading.Timer(0.1, self._schedule)
                timer.daemon = True
                timer.start()
