"""The session of fastzk's client: its lifecycle and kazoo's state machine.

:class:`SessionLifecycle` starts and stops the session, follows its state
as kazoo's client does (state listeners, ``_live``, ``_reset``), calls the
expiry callbacks, and routes the requests kazoo's own code makes through
``_call`` (its recipes, transactions, ACLs, auth) onto fastzk's engine.

Internal: a part of :class:`fastzk.client.KazooClient`.
"""

import threading
import warnings
from typing import Any, Callable, Dict, Optional, Tuple

from kazoo.exceptions import ConfigurationError
from kazoo.protocol import serialization as ks
from kazoo.protocol.connection import _CONNECTION_DROP, _SESSION_EXPIRED
from kazoo.interfaces import IAsyncResult
from kazoo.protocol.states import KazooState, KeeperState

from fastzk._core import codec
from fastzk.kazooface.base import ClientBase
from fastzk.drivers.engine import Engine
from fastzk.protocol import builders as _rq
from fastzk.protocol import session as _session
from fastzk.protocol.session import Request
from fastzk.protocol.states import kazoo_state_after

__all__ = ["SessionLifecycle", "StateListener"]

#: A connection state listener: called with a
#: :class:`~kazoo.protocol.states.KazooState`; returning True removes it.
StateListener = Callable[[str], Any]


# How each kazoo request class is encoded by fastzk's core, and how its
# reply is read.  Anything not listed is serialized by kazoo itself.
_PATH_WATCH = {
    ks.Exists: (codec.EXISTS, _session.R_STAT),
    ks.GetData: (codec.GET_DATA, _session.R_DATA_STAT),
    ks.GetChildren: (codec.GET_CHILDREN, _session.R_CHILDREN),
    ks.GetChildren2: (codec.GET_CHILDREN2, _session.R_CHILDREN_STAT),
}


def _request_for(request: Any, result: Any) -> Request:
    """Build the engine request for one of kazoo's request objects."""
    cls = type(request)
    spec = _PATH_WATCH.get(cls)
    if spec is not None:
        opcode, kind = spec
        return _rq.read(opcode, kind, request.path, request.watcher, result)
    if cls is ks.Create or cls is ks.Create2:
        return _rq.create(request.path, request.data, request.acl,
                          request.flags, cls is ks.Create2, result)
    if cls is ks.Delete:
        return _rq.delete(request.path, request.version, result)
    if cls is ks.SetData:
        return _rq.set_data(request.path, request.data, request.version,
                            result)
    if cls is ks.Sync:
        return _rq.sync(request.path, result)
    return _rq.kazoo_request(request, result)


class SessionLifecycle(ClientBase):
    """Starting and stopping fastzk's client, and its session's state as
    kazoo reports it.

    Internal: a part of :class:`fastzk.client.KazooClient`, which
    documents the behaviour.
    """

    # -- kazoo's private state, kept in step with the engine -----------------

    def _reset(self) -> None:
        super()._reset()
        connection = getattr(self, "_connection", None)
        if isinstance(connection, Engine):
            # Requests made while disconnected, as kazoo's _queue holds them.
            self._queue = connection._queue
            self._pending = connection._pending

    # -- session state ---------------------------------------------------------

    @property
    def negotiated_timeout(self) -> Optional[int]:
        """The session timeout granted by the server, in milliseconds, or
        None before the first connection."""
        timeout: Optional[int] = self._connection.negotiated_timeout
        return timeout

    def on_session_expired(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` each time the session expires.

        Expiry is reported by the server when the client reconnects, or
        decided by the client after a whole session timeout without a
        server.  Either way the session's ephemeral nodes and watches are
        gone; unless the client was made with ``reconnect_on_expiry=False``
        it opens a new session by itself, and the callback is the place to
        rebuild application state on it.  fastzk's recipes (locks, caches,
        persistent watches) handle this themselves.  Callbacks run on the
        client's event thread.
        """
        if not callable(callback):
            raise ConfigurationError("callback must be callable")
        self._expiry_callbacks.append(callback)

    def _session_callback(self, state: str) -> None:
        with self._state_lock:
            self._change_session_state(state)

    def _change_session_state(self, state: str) -> None:
        # kazoo's state machine (fastzk.protocol.states), with one
        # difference: a lost connection keeps the watches, because the
        # engine restores them on the next connection instead of firing
        # and dropping them.
        previous = self._state
        if state == previous:
            return
        if state == KeeperState.EXPIRED_SESSION:
            for callback in self._expiry_callbacks:
                self._dispatch(callback)
        self._state = state
        seen = kazoo_state_after(previous, state)
        if seen == KazooState.CONNECTED:
            self.logger.info("Zookeeper connection established, state: %s",
                             state)
            self._live.set()
        elif seen == KazooState.LOST:
            self.logger.info("Zookeeper session closed, state: %s", state)
            self._live.clear()
        elif seen == KazooState.SUSPENDED:
            self.logger.info("Zookeeper connection lost")
            self._live.clear()
        if seen is not None:
            self._make_state_change(seen)
        if seen == KazooState.LOST:
            self._reset()

    def _make_state_change(self, state: str) -> None:
        if self.state == state:
            return
        self.state = state
        for listener in list(self.state_listeners):
            self._dispatch(self._run_listener, listener, state)

    def _run_listener(self, listener: StateListener, state: str) -> None:
        try:
            if listener(state) is True:
                self.remove_listener(listener)
        except Exception:
            self.logger.exception("Error in connection state listener")

    # -- kazoo's requests, starting and stopping ------------------------------

    def _call(self, request: Any, async_object: IAsyncResult) -> None:
        if request is _CONNECTION_DROP:
            self._connection.drop_connection()
            return None
        if request is _SESSION_EXPIRED:
            self._connection.expire_session()
            return None
        self._connection.submit(_request_for(request, async_object))
        return None

    def stop(self) -> None:
        """Gracefully stop this Zookeeper session.

        Sends closeSession (the server removes the session's ephemeral nodes
        and fires their watches), waits for the reply, and stops the session
        thread.
        """
        if self._stopped.is_set():
            return
        self._stopped.set()
        try:
            self._connection.close_session(
                max(1.0, self._session_timeout / 1000.0))
        finally:
            try:
                self._safe_close()
            finally:
                self._events.stop()

    def start(self, timeout: Optional[float] = 15) -> None:
        """Initiate connection to ZK.

        Same contract as :meth:`kazoo.client.KazooClient.start`; the
        timeout exception's message also says why the last attempt on each
        server failed.

        :param timeout: Time in seconds to wait for connection to
                        succeed (None or infinity: no limit).
        :raises: :attr:`~kazoo.interfaces.IHandler.timeout_exception`
                 if the connection wasn't established within `timeout`
                 seconds.
        :raises kazoo.exceptions.AuthFailedError: at once, when the server
            refused the SASL authentication (``SessionClosedRequireSaslError``
            on a server that requires it); the message says what failed.
        """
        if timeout is not None and timeout > threading.TIMEOUT_MAX:
            timeout = None
        event = self.start_async()
        self._connection.wait_connected(event, timeout)
        if not self.connected:
            # We time-out, ensure we are disconnected
            self.stop()
            errors = self._connection.connect_errors()
            failure = self._connection.fatal_error
            self.close()
            if failure is not None:
                raise type(failure)(*failure.args)
            raise self.handler.timeout_exception(
                "Connection time-out" + _describe_connect_errors(errors))
        if self.chroot and not self.exists("/"):
            warnings.warn(
                "No chroot path exists, the chroot path "
                "should be created before normal use."
            )

    def start_async(self) -> threading.Event:
        """Asynchronously initiate connection to ZK.

        Same contract as :meth:`kazoo.client.KazooClient.start_async`.
        """
        if not self._live.is_set():
            self._events.start()
        live: threading.Event = super().start_async()
        return live


def _describe_connect_errors(
        errors: Dict[Tuple[str, int], BaseException]) -> str:
    """`` (host:port: error; ...)`` for :meth:`KazooClient.start`'s
    timeout message, or "" when no attempt has failed yet."""
    if not errors:
        return ""
    return " (%s)" % "; ".join(
        "%s:%s: %s" % (host, port, error or type(error).__name__)
        for (host, port), error in sorted(errors.items()))
