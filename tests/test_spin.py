"""The adaptive busy-poll budget (fastzk.drivers.spin)."""

import pytest

from fastzk.drivers.spin import (
    DEFAULT_CEILING_US,
    MISSES_TO_STOP,
    GOOD_SPELL,
    PREEMPTED_NS,
    PROBE_GAP_MAX,
    PROBE_GAP_MIN,
    RECOMMENDED_CEILING_US,
    AdaptiveSpin,
    ceiling_from_environment,
)

CAUGHT = 80_000  # ns: a reply caught while spinning (within 200 us)
MISSED = 5_000_000  # ns: a reply that came after the spin, while sleeping


def budgets_after(spin, waits_ns, off_cpu_ns=0):
    """The budget after each of ``waits_ns``."""
    seen = []
    for waited in waits_ns:
        spin.observe(waited, off_cpu_ns)
        seen.append(spin.budget_us)
    return seen


def test_caught_replies_keep_spinning_at_the_ceiling():
    spin = AdaptiveSpin(200)
    assert budgets_after(spin, [CAUGHT] * 10) == [200] * 10


def test_occasional_misses_do_not_stop_spinning():
    spin = AdaptiveSpin(200)
    waits = ([MISSED] * (MISSES_TO_STOP - 1) + [CAUGHT]) * 5
    assert set(budgets_after(spin, waits)) == {200}


def test_misses_in_a_row_stop_spinning():
    spin = AdaptiveSpin(200)
    assert budgets_after(spin, [MISSED] * MISSES_TO_STOP) == \
        [200] * (MISSES_TO_STOP - 1) + [0]


def stop(spin):
    budgets_after(spin, [MISSED] * MISSES_TO_STOP)
    assert spin.budget_us == 0


def test_a_stopped_reader_probes_and_resumes_when_the_probe_catches():
    spin = AdaptiveSpin(200)
    stop(spin)
    # Slept waits are long whatever the server does (they include the
    # wake-up): they cannot restart spinning, only a probe can.
    seen = budgets_after(spin, [250_000] * PROBE_GAP_MIN)
    assert seen == [0] * (PROBE_GAP_MIN - 1) + [200]
    # The first replies after sleeping may be slow: a probe is not ended
    # by one miss, only by as many in a row as stop spinning.
    waits = [MISSED] * (MISSES_TO_STOP - 1) + [CAUGHT] * 3
    assert budgets_after(spin, waits) == [200] * len(waits)


def test_missed_probes_back_off_up_to_the_largest_gap():
    spin = AdaptiveSpin(200)
    stop(spin)
    gaps = []
    for _ in range(9):
        waits = 0
        while spin.budget_us == 0:
            spin.observe(MISSED)
            waits += 1
        gaps.append(waits)
        # The probe spins until as many misses in a row as stop spinning.
        assert budgets_after(spin, [MISSED] * MISSES_TO_STOP) == \
            [200] * (MISSES_TO_STOP - 1) + [0]
    assert gaps == [16, 32, 64, 128, 256, 512, 1024, 1024, 1024]
    assert gaps[-1] == PROBE_GAP_MAX


def gap_now(spin):
    """Stop ``spin`` and count the waits until its next probe."""
    stop(spin)
    waits = 0
    while spin.budget_us == 0:
        spin.observe(MISSED)
        waits += 1
    return waits


def test_the_gap_doubles_after_a_poor_spell_and_resets_after_a_good_one():
    spin = AdaptiveSpin(200)
    assert gap_now(spin) == PROBE_GAP_MIN
    # A spell that caught some replies but missed more (a busy machine):
    # the gap keeps doubling.
    budgets_after(spin, [MISSED, CAUGHT] * 10)
    assert gap_now(spin) == 2 * PROBE_GAP_MIN
    budgets_after(spin, [MISSED, MISSED, CAUGHT] * 10)
    assert gap_now(spin) == 4 * PROBE_GAP_MIN
    # A spell that caught most of its replies, ended by a burst of slow
    # ones: back to the smallest gap.
    spell = [MISSED] + [CAUGHT] * 5
    budgets_after(spin, spell * 6)  # and then the 4 misses that stop it
    assert spin.budget_us == 200
    assert 30 >= GOOD_SPELL * (36 + MISSES_TO_STOP)
    assert gap_now(spin) == PROBE_GAP_MIN


def test_spins_taken_off_the_cpu_count_as_misses():
    # Caught in time, but the spinning thread was preempted: another
    # thread was waiting for the CPU the spin held.
    spin = AdaptiveSpin(200)
    assert budgets_after(spin, [CAUGHT] * MISSES_TO_STOP, PREEMPTED_NS) == \
        [200] * (MISSES_TO_STOP - 1) + [0]
    # Off-CPU time below the mark (a hypervisor's hiccup) does not.
    spin = AdaptiveSpin(200)
    waits = [CAUGHT] * (4 * MISSES_TO_STOP)
    assert set(budgets_after(spin, waits, PREEMPTED_NS - 1)) == {200}


def test_a_zero_ceiling_never_spins():
    spin = AdaptiveSpin(0)
    for waited in (0, 10, 5_000_000, 0):
        spin.observe(waited)
        assert spin.budget_us == 0


def test_spinning_is_off_unless_asked_for(monkeypatch):
    monkeypatch.delenv("FASTZK_SPIN_US", raising=False)
    assert DEFAULT_CEILING_US == 0
    assert ceiling_from_environment() == 0
    monkeypatch.setenv("FASTZK_SPIN_US", "")
    assert ceiling_from_environment() == 0
    monkeypatch.setenv("FASTZK_SPIN_US", "200")
    assert ceiling_from_environment() == RECOMMENDED_CEILING_US == 200


def test_ceiling_from_environment(monkeypatch):
    monkeypatch.setenv("FASTZK_SPIN_US", "0")
    assert ceiling_from_environment() == 0
    monkeypatch.setenv("FASTZK_SPIN_US", " 50 ")
    assert ceiling_from_environment() == 50
    for bad in ("-1", "fast", "1.5"):
        monkeypatch.setenv("FASTZK_SPIN_US", bad)
        with pytest.raises(ValueError, match="FASTZK_SPIN_US"):
            ceiling_from_environment()


def test_a_client_does_not_spin_by_default(zk):
    assert zk._connection.spin.ceiling_us == 0
    assert zk._connection.spin.budget_us == 0


def test_the_engine_spins_only_with_the_compiled_core(zk_hosts,
                                                      monkeypatch):
    import fastzk
    from fastzk import KazooClient

    monkeypatch.setenv("FASTZK_SPIN_US", "200")
    client = KazooClient(zk_hosts, timeout=10.0)
    client.start()
    try:
        assert client._connection.spin.ceiling_us == \
            (200 if fastzk.EXTENSIONS else 0)
    finally:
        client.stop()
        client.close()
