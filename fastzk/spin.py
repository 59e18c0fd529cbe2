"""How long a synchronous caller busy-polls its socket before sleeping.

On loopback and fast LANs a reply to a read comes back in about 100 us.  A
thread that sleeps in ``poll()`` for it pays the wake-up on top (a few tens
of microseconds on bare metal, much more in a virtual machine), which
halves the synchronous request rate.  Busy-polling the socket for a short
while first (with the GIL released, in the compiled core) catches the reply
without sleeping.

Spinning is only worth its CPU when replies come back within the spin, so
the reader keeps spinning while spins catch replies and stops after
``MISSES_TO_STOP`` waits in a row outlasted the spin.  Whether spinning
would work again cannot be read off a wait that slept: its length includes
the wake-up, the very cost spinning avoids (in a virtual machine that alone
can exceed the ceiling).  So while stopped, the reader probes: after a gap
of waits it spins again, and stops again (doubling the gap, from
``PROBE_GAP_MIN`` to ``PROBE_GAP_MAX`` waits) if the first spins miss, so
a loaded machine or a distant server costs almost no spinning at all.
"""

import os

#: Default ceiling in microseconds; ``FASTZK_SPIN_US`` overrides it (0: off).
DEFAULT_CEILING_US = 200

#: Consecutive waits that outlast the spin before spinning stops.
MISSES_TO_STOP = 4

#: Waits between probes while spinning is stopped: the gap starts here and
#: doubles after each probe that missed, up to PROBE_GAP_MAX.
PROBE_GAP_MIN = 16
PROBE_GAP_MAX = 1024


def ceiling_from_environment(default=DEFAULT_CEILING_US):
    """Return ``FASTZK_SPIN_US`` as a number of microseconds, or ``default``.

    :raises ValueError: when the variable is set but is not an integer >= 0.
    """
    value = os.environ.get("FASTZK_SPIN_US", "").strip()
    if not value:
        return default
    try:
        us = int(value)
    except ValueError:
        raise ValueError("FASTZK_SPIN_US must be a whole number of "
                         "microseconds, not %r" % (value,)) from None
    if us < 0:
        raise ValueError("FASTZK_SPIN_US must be >= 0, not %d" % us)
    return us


class AdaptiveSpin(object):
    """The busy-poll budget of one connection's reader for its next wait.

    :param ceiling_us: how long to spin, in microseconds; 0 disables
                       spinning.
    """

    __slots__ = ("ceiling_us", "budget_us", "_misses", "_gap", "_wait")

    def __init__(self, ceiling_us):
        self.ceiling_us = ceiling_us
        #: Microseconds to spin on the next wait (0: sleep at once).
        self.budget_us = ceiling_us
        self._misses = 0
        self._gap = PROBE_GAP_MIN
        self._wait = 0  # waits left before the next probe

    def observe(self, waited_ns):
        """Account a wait that took ``waited_ns`` nanoseconds with the
        budget it was given."""
        budget = self.budget_us
        if budget:
            if waited_ns <= budget * 1000:  # caught while spinning
                self._misses = 0
                self._gap = PROBE_GAP_MIN
            else:
                self._misses += 1
                if self._misses >= MISSES_TO_STOP:
                    self.budget_us = 0
                    self._wait = self._gap
                    self._gap = min(self._gap * 2, PROBE_GAP_MAX)
        elif self.ceiling_us:
            self._wait -= 1
            if self._wait <= 0:
                # Probe: spin again until MISSES_TO_STOP misses in a row.
                # A single spin would not do: after a spell of sleeping the
                # first replies are slow (the server's threads and the
                # idle vCPUs have to wake up as well).
                self.budget_us = self.ceiling_us
                self._misses = 0
