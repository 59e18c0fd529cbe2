"""The life of an :class:`~fastzk.aio.AsyncClient`'s connection: start,
stop and close, the state and its listeners, and :meth:`Lifecycle.retry`
across connection losses."""

from __future__ import annotations

import asyncio
import inspect
import ssl
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Dict,
    List,
    Optional,
    Set,
    Tuple,
)

from kazoo.exceptions import ConfigurationError, ConnectionClosedError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState
from kazoo.retry import KazooRetry, RetryFailedError

from fastzk.aio.driver import Connection, Identity
from fastzk.drivers.jitter import RANDOM as _random
from fastzk.protocol.session import SessionMachine

__all__ = ["Lifecycle"]


class Lifecycle(object):
    """The client's :class:`~fastzk.aio.driver.Connection`: starting and
    stopping it, its state and the listeners of its changes, and retrying
    a command across its losses (a part of :class:`~fastzk.aio.AsyncClient`,
    which sets the attributes below)."""

    hosts: List[Tuple[str, int]]
    auth_data: Set[Tuple[str, str]]
    randomize_hosts: bool
    connection_retry: Any
    command_retry: Any
    reply_batching: float
    machine: SessionMachine
    _sasl_options: Optional[Dict[str, Any]]
    _ssl: Optional[ssl.SSLContext]
    _identity: Identity
    _loop: Optional[asyncio.AbstractEventLoop]
    _connection: Optional[Connection]
    _listeners: List[Callable[[str], Any]]
    _state_queues: List["asyncio.Queue[str]"]
    _closed: bool
    # What the watches do on a new connection and on expiry (WatchCalls).
    _reconnected: Callable[[], None]
    _expired: Callable[[], None]

    # -- state -------------------------------------------------------------

    @property
    def state(self) -> str:
        """The connection state, a :class:`~kazoo.protocol.states.KazooState`."""
        connection = self._connection
        state: str = (connection.state if connection is not None
                      else KazooState.LOST)
        return state

    @property
    def connected(self) -> bool:
        """Whether the client is connected to a server."""
        connected: bool = self.state == KazooState.CONNECTED
        return connected

    @property
    def client_id(self) -> Optional[Tuple[int, bytes]]:
        """``(session_id, password)`` of the current session, or None."""
        identity = self._identity
        if identity._session_id is None:
            return None
        return identity._session_id, identity._session_passwd

    @property
    def negotiated_timeout(self) -> Optional[int]:
        """The session timeout the server granted, in milliseconds."""
        return self.machine.negotiated_timeout

    def add_listener(self, listener: Callable[[str], Any]) -> None:
        """Call ``listener(state)`` on each state change (a coroutine
        function runs as a task).  Returning True removes a plain
        function listener, as in kazoo."""
        if not callable(listener):
            raise ConfigurationError("listener must be callable")
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[str], Any]) -> None:
        """Remove a listener added with :meth:`add_listener`."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def states(self) -> AsyncIterator[str]:
        """The state changes, as an async iterator (the current state
        first)."""
        queue: "asyncio.Queue[str]" = asyncio.Queue()
        queue.put_nowait(self.state)
        self._state_queues.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._state_queues.remove(queue)

    def _on_state(self, state: str) -> None:
        for queue in list(self._state_queues):
            queue.put_nowait(state)
        for listener in list(self._listeners):
            try:
                if inspect.iscoroutinefunction(listener):
                    asyncio.ensure_future(listener(state))
                elif listener(state) is True:
                    self.remove_listener(listener)
            except Exception:
                import logging

                logging.getLogger("fastzk.aio").exception(
                    "Error in connection state listener")

    # -- lifecycle ---------------------------------------------------------

    def _check_loop(self) -> asyncio.AbstractEventLoop:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "AsyncClient used outside its event loop (from another "
                "thread, or not in a coroutine)") from None
        loop = self._loop
        if loop is not None and running is not loop:
            raise RuntimeError("AsyncClient used from an event loop other "
                               "than the one it was started on")
        return running

    async def start(self, timeout: float = 15) -> None:
        """Connect; raises :exc:`~kazoo.handlers.threading.KazooTimeoutError`
        when no server was reached within ``timeout`` seconds, or the
        authentication error a server answered with."""
        loop = self._check_loop()
        if self._connection is not None and self._connection.running:
            return
        self._loop = loop
        retry = self.connection_retry
        if isinstance(retry, dict):
            retry = KazooRetry(**retry)
        self._connection = connection = Connection(
            loop, self.hosts, self._identity, self.machine, self._on_state,
            ssl_context=self._ssl, randomize_hosts=self.randomize_hosts,
            auth_data=list(self.auth_data), sasl_options=self._sasl_options,
            on_reconnected=self._reconnected, on_expired=self._expired,
            retry=retry, reply_batching=self.reply_batching)
        connection.start()
        if await connection.wait_connected(timeout):
            return
        error = connection.fatal_error
        await connection.stop()
        if error is not None:
            raise error
        details = "; ".join("%s:%s: %s" % (h, p, e) for (h, p), e in
                            sorted(connection.connect_errors.items()))
        raise KazooTimeoutError("Connection time-out"
                                + (" (%s)" % details if details else ""))

    async def stop(self) -> None:
        """Close the session and the connection."""
        self._check_loop()
        connection = self._connection
        if connection is not None:
            await connection.stop()

    async def close(self) -> None:
        """Release the client's resources (after :meth:`stop`)."""
        await self.stop()
        self._closed = True

    async def retry(self, func: Callable[..., Awaitable[Any]], *args: Any,
                    **kwargs: Any) -> Any:
        """Await ``func(*args, **kwargs)`` until it completes without a
        connection loss or timeout, paced by ``command_retry`` (a
        :class:`kazoo.retry.KazooRetry`; by default up to 5 tries), as
        kazoo's ``client.retry`` does.

        :raises RetryFailedError: the tries or the deadline ran out.
        """
        policy = self.command_retry or KazooRetry(max_tries=5)
        if isinstance(policy, dict):
            policy = KazooRetry(**policy)
        tries = 0
        delay = float(policy.delay)
        loop = self._check_loop()
        stop_at = (None if policy.deadline is None
                   else loop.time() + policy.deadline)
        while True:
            try:
                return await func(*args, **kwargs)
            except ConnectionClosedError:
                raise
            except policy.retry_exceptions:
                tries += 1
                if tries == policy.max_tries:
                    raise RetryFailedError("Too many retry attempts")
                pause = delay * _random.uniform(1.0 - policy.max_jitter,
                                               1.0 + policy.max_jitter)
                if stop_at is not None and loop.time() + pause >= stop_at:
                    raise RetryFailedError("Exceeded retry deadline")
                await asyncio.sleep(pause)
                delay = min(pause * policy.backoff, policy.max_delay)
