"""The session's states and the rules between them, with no I/O.

A ZooKeeper client session is in one of kazoo's
:class:`~kazoo.protocol.states.KeeperState` values at a time:

- CONNECTING while no server serves it (before the first connection, and
  after a connection drops);
- CONNECTED or CONNECTED_RO once a server accepted the ConnectRequest;
- EXPIRED_SESSION when the server said so, or when the client gave the
  session up after a whole session timeout without a server (Curator's
  rule: the server expires a session it has not heard from for the
  negotiated timeout, so a partitioned client must assume it did);
- AUTH_FAILED when the server refused the client's credentials;
- CLOSED when the client closed it, or before it started.

Applications see the coarser :class:`~kazoo.protocol.states.KazooState`:
CONNECTED, SUSPENDED (connection lost, session perhaps alive) and LOST
(session gone).  :func:`kazoo_state_after` is that mapping, as kazoo's
client applies it, and :class:`SessionStates` is the one place the drivers
move the session from state to state.
"""

from __future__ import annotations

from typing import Callable, Optional

from kazoo.protocol.states import KazooState, KeeperState

__all__ = ["LOST_STATES", "SessionStates", "kazoo_state_after"]

#: The states in which the session is gone (kazoo's ``LOST``).
LOST_STATES = frozenset((KeeperState.EXPIRED_SESSION,
                         KeeperState.AUTH_FAILED, KeeperState.CLOSED))

_CONNECTED_STATES = frozenset((KeeperState.CONNECTED,
                               KeeperState.CONNECTED_RO))
# kazoo is untyped: its state names, as the str they are.
_CONNECTED: str = KazooState.CONNECTED
_SUSPENDED: str = KazooState.SUSPENDED
_LOST: str = KazooState.LOST


def kazoo_state_after(previous: str, new: str) -> Optional[str]:
    """The :class:`~kazoo.protocol.states.KazooState` to report when the
    session goes from the KeeperState ``previous`` to ``new``, or None
    when the application sees no change.

    A session that was lost stays LOST while the client connects again
    (a new session is not SUSPENDED: nothing of the old one can come
    back); it becomes CONNECTED with the new session.
    """
    if new == previous:
        return None
    if new in _CONNECTED_STATES:
        return _CONNECTED
    if new in LOST_STATES:
        return _LOST
    if previous in LOST_STATES and new == KeeperState.CONNECTING:
        return None
    return _SUSPENDED


class SessionStates:
    """Where a session is, across its connections.

    :param notify: called with each new KeeperState, after
                   :attr:`current` took it.  A state entered twice in a
                   row is reported once.
    """

    def __init__(self, notify: Callable[[str], None]) -> None:
        self.notify = notify
        #: The current :class:`~kazoo.protocol.states.KeeperState`.
        self.current: str = KeeperState.CLOSED
        #: What the application sees: a
        #: :class:`~kazoo.protocol.states.KazooState`.
        self.kazoo_state: str = _LOST

    def _enter(self, state: str) -> None:
        previous = self.current
        if state == previous:
            return
        self.current = state
        seen = kazoo_state_after(previous, state)
        if seen is not None:
            self.kazoo_state = seen
        self.notify(state)

    @property
    def lost(self) -> bool:
        """Whether the session is gone (expired, refused or closed)."""
        return self.current in LOST_STATES

    def connecting(self) -> None:
        """No server serves the session: before the first connection, or
        after a connection ended without ending the session."""
        self._enter(KeeperState.CONNECTING)

    def connected(self, read_only: bool = False) -> None:
        """A server accepted the session (a read-only one when
        ``read_only``)."""
        self._enter(KeeperState.CONNECTED_RO if read_only
                    else KeeperState.CONNECTED)

    def expired(self) -> None:
        """The session is gone: the server said it expired, or no server
        was reached for a whole session timeout."""
        self._enter(KeeperState.EXPIRED_SESSION)

    def auth_failed(self) -> None:
        """The server refused the client's authentication."""
        self._enter(KeeperState.AUTH_FAILED)

    def closed(self) -> None:
        """The client closed the session, or stopped for good."""
        self._enter(KeeperState.CLOSED)
