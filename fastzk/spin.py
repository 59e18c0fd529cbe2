"""How long a synchronous caller busy-polls its socket before sleeping.

On loopback and fast LANs a reply to a read comes back in about 100 us.  A
thread that sleeps in ``poll()`` for it pays the wake-up on top (a few tens
of microseconds on bare metal, much more in a virtual machine), which
halves the synchronous request rate.  Busy-polling the socket for a short
while first (with the GIL released, in the compiled core) catches the reply
without sleeping.

Spinning is only worth its CPU when replies come back within the spin, so
the budget adapts the way Linux's KVM halt-polling does
(``virt/kvm/kvm_main.c``, ``grow_halt_poll_ns``/``shrink_halt_poll_ns``):
a wait that ended within the ceiling grows the budget (doubling, up to the
ceiling), a longer one halves it, down to nothing.  A loaded machine or a
distant server therefore costs no spinning at all.
"""

import os

#: Default ceiling in microseconds; ``FASTZK_SPIN_US`` overrides it (0: off).
DEFAULT_CEILING_US = 200

#: The smallest budget worth spinning; halving below it turns spinning off.
_START_US = 25


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
    """The current busy-poll budget of one connection's reader.

    :param ceiling_us: the largest budget, in microseconds; 0 disables
                       spinning.
    """

    __slots__ = ("ceiling_us", "budget_us")

    def __init__(self, ceiling_us):
        self.ceiling_us = ceiling_us
        self.budget_us = ceiling_us

    def observe(self, waited_ns):
        """Adapt the budget to a wait that took ``waited_ns`` nanoseconds."""
        ceiling = self.ceiling_us
        if waited_ns <= ceiling * 1000:
            budget = self.budget_us * 2
            if budget < _START_US:
                budget = _START_US
            self.budget_us = budget if budget < ceiling else ceiling
        else:
            budget = self.budget_us // 2
            self.budget_us = budget if budget >= _START_US else 0
