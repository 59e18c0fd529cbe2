"""The adaptive busy-poll budget (fastzk.spin)."""

import pytest

from fastzk.spin import AdaptiveSpin, ceiling_from_environment


def test_short_waits_keep_the_budget_at_its_ceiling():
    spin = AdaptiveSpin(200)
    for _ in range(10):
        spin.observe(80_000)
    assert spin.budget_us == 200


def budgets_after(spin, waits_ns):
    """The budget after each of ``waits_ns``."""
    seen = []
    for waited in waits_ns:
        spin.observe(waited)
        seen.append(spin.budget_us)
    return seen


def test_long_waits_halve_the_budget_down_to_nothing():
    spin = AdaptiveSpin(200)
    assert budgets_after(spin, [5_000_000] * 5) == [100, 50, 25, 0, 0]


def test_a_short_wait_after_spinning_stopped_starts_it_again():
    spin = AdaptiveSpin(200)
    budgets_after(spin, [5_000_000] * 5)
    assert spin.budget_us == 0
    assert budgets_after(spin, [150_000] * 5) == [25, 50, 100, 200, 200]


def test_a_zero_ceiling_never_spins():
    spin = AdaptiveSpin(0)
    for waited in (0, 10, 5_000_000, 0):
        spin.observe(waited)
        assert spin.budget_us == 0


def test_ceiling_from_environment(monkeypatch):
    monkeypatch.delenv("FASTZK_SPIN_US", raising=False)
    assert ceiling_from_environment() == 200
    monkeypatch.setenv("FASTZK_SPIN_US", "0")
    assert ceiling_from_environment() == 0
    monkeypatch.setenv("FASTZK_SPIN_US", " 50 ")
    assert ceiling_from_environment() == 50
    for bad in ("-1", "fast", "1.5"):
        monkeypatch.setenv("FASTZK_SPIN_US", bad)
        with pytest.raises(ValueError, match="FASTZK_SPIN_US"):
            ceiling_from_environment()


def test_the_engine_spins_only_with_the_compiled_core(zk):
    import fastzk
    ceiling = zk._connection.spin.ceiling_us
    assert ceiling == (200 if fastzk.EXTENSIONS else 0)
