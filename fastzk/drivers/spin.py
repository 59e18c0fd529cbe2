"""How long a synchronous caller busy-polls its socket before sleeping.

On loopback and fast LANs a reply to a read comes back in about 100 us.  A
thread that sleeps in ``poll()`` for it pays the wake-up on top (a few tens
of microseconds on bare metal, much more in a virtual machine), which
halves the synchronous request rate.  Busy-polling the socket for a short
while first (with the GIL released, in the compiled core) catches the reply
without sleeping.

Spinning is off by default: measured on a quiet and on a busy machine, it
gave no clear gain in synchronous throughput and cost up to several times
the CPU per request.  ``FASTZK_SPIN_US=200`` (``RECOMMENDED_CEILING_US``)
turns it on, for a dedicated machine near its server where latency counts
more than CPU; the ceiling is read when a client is made, and only the
compiled core spins.

With a ceiling set, spinning is only worth its CPU when replies come back
within the spin and nobody else needs that CPU meanwhile.  So the reader
counts a wait as *missed* when it outlasted the spin, or when the spinning
thread spent a good part of it off its CPU (``PREEMPTED_NS``; the
compiled reader measures it): the scheduler gave the CPU to another thread
that was ready to run, so the machine has more work than CPUs and the spin
is taking CPU time from the server or the application.  After
``MISSES_TO_STOP`` missed waits in a row it stops spinning.

Whether spinning would work again cannot be read off a wait that slept:
its length includes the wake-up, the very cost spinning avoids (in a
virtual machine that alone can exceed the ceiling).  So while stopped, the
reader probes: after a gap of waits it spins again.  When spinning stops,
the gap goes back to ``PROBE_GAP_MIN`` waits if the spell of spinning
caught most replies (``GOOD_SPELL``: a burst of slow replies ended it), and
doubles otherwise, up to ``PROBE_GAP_MAX``.  A reader that catches some
replies and misses many (a busy machine) thus spins ever more rarely, and
one on a quiet machine with a near server spins nearly always.
"""

import os

#: Default ceiling in microseconds (0: no spinning); ``FASTZK_SPIN_US``
#: overrides it.
DEFAULT_CEILING_US = 0

#: The ceiling recommended to opt in, for ``FASTZK_SPIN_US``: about twice
#: a loopback read's round trip.
RECOMMENDED_CEILING_US = 200

#: Consecutive waits that outlast the spin before spinning stops.
MISSES_TO_STOP = 4

#: Nanoseconds off the CPU during one spin that count it as preempted.  On
#: this project's 2-vCPU test machine, with nothing else running, a spin
#: loses up to ~100 us to the hypervisor and interrupts; a thread preempted
#: by another runs again after a time slice or a wake-up of its own,
#: most often hundreds of microseconds later.
PREEMPTED_NS = 150_000

#: Waits between probes while spinning is stopped: the gap starts here and
#: doubles after each spell of spinning that was not good, up to
#: PROBE_GAP_MAX.
PROBE_GAP_MIN = 16
PROBE_GAP_MAX = 1024

#: The share of its waits a spell of spinning must have caught (in time
#: and undisturbed) to bring the gap back to PROBE_GAP_MIN.
GOOD_SPELL = 0.75


def ceiling_from_environment(default: int = DEFAULT_CEILING_US) -> int:
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

    __slots__ = ("ceiling_us", "budget_us", "_misses", "_gap", "_wait",
                 "_spun", "_caught")

    def __init__(self, ceiling_us: int) -> None:
        self.ceiling_us = ceiling_us
        #: Microseconds to spin on the next wait (0: sleep at once).
        self.budget_us = ceiling_us
        self._misses = 0
        self._gap = PROBE_GAP_MIN
        self._wait = 0  # waits left before the next probe
        self._spun = 0  # waits of this spell of spinning
        self._caught = 0  # of which caught

    def observe(self, waited_ns: int, off_cpu_ns: int = 0) -> None:
        """Account a wait that took ``waited_ns`` nanoseconds with the
        budget it was given, ``off_cpu_ns`` of its spin spent off the CPU."""
        budget = self.budget_us
        if budget:
            self._spun += 1
            if waited_ns <= budget * 1000 and off_cpu_ns < PREEMPTED_NS:
                self._misses = 0  # caught while spinning, undisturbed
                self._caught += 1
                return
            self._misses += 1
            if self._misses >= MISSES_TO_STOP:
                self.budget_us = 0
                if self._caught >= GOOD_SPELL * self._spun:
                    self._gap = PROBE_GAP_MIN
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
                self._spun = self._caught = 0
