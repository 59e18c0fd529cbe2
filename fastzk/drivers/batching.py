"""Reply batching: the replies of a pipelined burst read in few reads.

ZooKeeper answers a session's requests in order, one reply after another,
and a reader that wakes as soon as data arrives takes them one or two per
wake-up, each paying for a wake-up of its thread or event loop and the
system calls around it.  While a burst is in flight, though, the replies
still to come wait behind one another at the server anyway.  So after a
read that brought only a few replies, with many still outstanding, both
drivers stop reading for a moment (the *pause*, a client argument,
``reply_batching``), and the next read takes what arrived meanwhile at
once.  The burst completes no later, up to one pause aside; its replies
cost a fraction of the wake-ups.  Sequential calls and short bursts never
meet the rule, so they never wait.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_PAUSE", "MAX_FRAMES", "MIN_PENDING", "check_pause"]

#: The rule applies while at least this many replies are outstanding after
#: a read: a pipelined burst.
MIN_PENDING = 64

#: ... and when the read brought fewer frames than this.
MAX_FRAMES = 16

#: The pause, in seconds, unless the client says otherwise.
DEFAULT_PAUSE = 0.001


def check_pause(value: Any) -> float:
    """``value`` as a pause in seconds (0 for no batching); raises
    :exc:`TypeError` for anything but a number, :exc:`ValueError` for a
    number outside 0 to 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("Invalid type for 'reply_batching' (seconds "
                        "expected)")
    if not 0 <= value <= 1:
        raise ValueError("reply_batching must be from 0 to 1 seconds")
    return float(value)
