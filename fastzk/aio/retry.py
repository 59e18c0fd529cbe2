"""How the asyncio recipes outlast a connection loss.

ZooKeeper keeps a session, and so its ephemeral nodes, across a lost
connection as long as the client reconnects within the session timeout:
a request cut by the loss is made again once reconnected, and only the
end of the session (expiry, or the client closed) ends the retrying.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Optional, TypeVar

from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    LockTimeout,
    SessionExpiredError,
)

__all__ = ["retry_cut_attempts", "until_session_ends", "within"]

_T = TypeVar("_T")

#: The first pause before a retry, doubled each time up to _MAX_DELAY.
_FIRST_DELAY = 0.05
_MAX_DELAY = 1.0


async def until_session_ends(call: Callable[[], Awaitable[_T]]
                             ) -> Optional[_T]:
    """``await call()``, made again after each connection loss (backing
    off from 50 ms to 1 s); None once the session has ended (its
    ephemeral nodes are gone with it).  Other errors propagate."""
    delay = _FIRST_DELAY
    while True:
        try:
            return await call()
        except (SessionExpiredError, ConnectionClosedError):
            return None
        except ConnectionLoss:
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)


async def within(attempt: Awaitable[bool], remaining: Optional[float],
                 timeout: Optional[float], what: str) -> bool:
    """Await ``attempt``, for at most ``remaining`` seconds unless None.

    :raises LockTimeout: ``remaining`` passed (the message names ``what``
                         and the caller's ``timeout``).
    """
    if remaining is None:
        return await attempt
    try:
        return await asyncio.wait_for(attempt, remaining)
    except asyncio.TimeoutError:
        raise LockTimeout("Failed to acquire %s after %s seconds"
                          % (what, timeout))


async def retry_cut_attempts(
        attempt: Callable[[Optional[float]], Awaitable[bool]],
        timeout: Optional[float], what: str) -> bool:
    """Run ``attempt(remaining)`` (remaining: the seconds left of
    ``timeout``, or None) again each time a connection loss cuts it, until
    it returns; whether it got ``what``.

    The session and its ephemeral nodes outlive a connection loss (the
    client reconnects within the session timeout), so an attempt is made
    again, as kazoo's recipes retry it; the cut attempt must have deleted
    its node, created or not, before it raised.

    :raises LockTimeout: ``timeout`` passed while retrying.
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    delay = _FIRST_DELAY
    while True:
        remaining = (None if deadline is None
                     else max(0.0, deadline - loop.time()))
        try:
            return await attempt(remaining)
        except ConnectionLoss:
            if deadline is not None and loop.time() + delay >= deadline:
                raise LockTimeout("Failed to acquire %s after %s seconds"
                                  % (what, timeout))
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)
