"""The thread driver's client-side expiry clock (Curator's rule).

The server expires a session it has not heard from for the negotiated
timeout.  A partitioned client otherwise learns of that only when it
reaches a server again, possibly hours later; until then a lock holder
must assume it lost the lock.  So while disconnected, the client takes
its session as expired at the moment the server may expire it: a whole
session timeout after the server was last heard from
(:meth:`~fastzk.protocol.session.SessionMachine.expiry_deadline`).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Callable, Optional

if TYPE_CHECKING:
    from fastzk.drivers.channel import Channel
    from fastzk.protocol.session import SessionMachine

__all__ = ["ExpiryClock"]


class ExpiryClock(object):
    """A timer that gives the session up if no connection came back.

    :param machine: the session's protocol state (its expiry deadline).
    :param channel: the connection (its send lock, and whether a socket is
                    attached).
    :param on_expired: called on the timer's thread once the session was
                       given up, outside the send lock.
    """

    def __init__(self, machine: "SessionMachine", channel: "Channel",
                 on_expired: Callable[[], None]) -> None:
        self.machine = machine
        self.channel = channel
        self.on_expired = on_expired
        # Bumped on every connection change: a timer acts only if it is
        # still the epoch it was started in.
        self._epoch = 0
        self._timer: Optional[threading.Timer] = None

    def start(self) -> None:
        """Run the clock from now to the session's expiry deadline (no
        clock before any session was negotiated)."""
        deadline = self.machine.expiry_deadline()
        if deadline is None:
            return
        with self.channel.send_lock:
            self._epoch += 1
            epoch = self._epoch
        timer = threading.Timer(max(0.0, deadline - time.monotonic()),
                                self._fire, (epoch,))
        timer.daemon = True
        self._cancel_timer()
        self._timer = timer
        timer.start()

    def stop(self) -> None:
        """A connection came back, or the session ended: no client-side
        expiry is pending any more."""
        self._cancel_timer()
        with self.channel.send_lock:
            self._epoch += 1

    def _cancel_timer(self) -> None:
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()

    def _fire(self, epoch: int) -> None:
        with self.channel.send_lock:
            if epoch != self._epoch or self.channel.socket is not None:
                return
            self._epoch += 1
            self.machine.declare_lost()
        self.on_expired()
