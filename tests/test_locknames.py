"""The lock node-name rules of fastzk.recipes.locknames, with no server: parsing,
the order by integer sequence, holders and predecessors for exclusive and
shared contenders, and names that are not contenders."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastzk.recipes import locknames
from fastzk.recipes.locknames import (
    BLOCKED_BY,
    EXCLUSIVE,
    SHARED,
    Contender,
    holding,
    in_lock_order,
    parse,
    predecessor,
    sequence_of,
    waits_for,
)

UUID = "0123456789abcdef0123456789abcdef"


def name(marker, sequence, prefix=UUID):
    """A contender node name as ZooKeeper makes it (``%010d``)."""
    return "%s%s%010d" % (prefix, marker, sequence)


def w(sequence, prefix=UUID):
    return name(EXCLUSIVE, sequence, prefix)


def r(sequence, prefix=UUID):
    return name(SHARED, sequence, prefix)


# -- parse -------------------------------------------------------------------

def test_parse_exclusive_and_shared():
    assert parse(w(42)) == Contender(w(42), EXCLUSIVE, 42)
    assert parse(r(7)) == Contender(r(7), SHARED, 7)
    assert parse(r(7)).shared and not parse(w(42)).shared


def test_parse_sequence_past_the_counter_overflow_is_negative():
    node = UUID + "__lock__-2147483648"
    assert parse(node).sequence == -2147483648
    assert sequence_of(node) == -2147483648


@pytest.mark.parametrize("node", [
    "lease_holder",                       # another recipe's node
    UUID + "__lock__",                    # no sequence
    UUID + "__lock__123",                 # too short
    UUID + "__lock__00000000001",         # too long
    UUID + "__lock__0000000001x",         # not at the end
    UUID + "__lease__0000000001",         # another marker
    UUID + "__lock__000000000a",
])
def test_parse_ignores_names_that_are_not_contenders(node):
    assert parse(node) is None


def test_parse_only_the_markers_asked_for():
    assert parse(r(3), markers=[EXCLUSIVE]) is None
    assert parse(w(3), markers=[EXCLUSIVE]).sequence == 3
    other = UUID + "__lease__0000000005"
    assert parse(other, markers=["__lease__"]) == Contender(
        other, "__lease__", 5)


def test_sequence_of_needs_a_sequence():
    assert sequence_of("anything0000000012") == 12
    with pytest.raises(ValueError):
        sequence_of(UUID + "__lock__")


# -- order -------------------------------------------------------------------

def test_order_is_by_sequence_not_by_name():
    children = [w(2, "a" * 32), r(1, "f" * 32), w(10, "0" * 32)]
    assert [c.node for c in in_lock_order(children)] == [
        r(1, "f" * 32), w(2, "a" * 32), w(10, "0" * 32)]


def test_order_compares_sequences_as_integers_across_the_overflow():
    # As text "-2147483647" < "-2147483648"; as integers it is the other
    # way round.
    later = UUID + "__lock__-2147483647"
    earlier = UUID + "__rlock__-2147483648"
    assert [c.node for c in in_lock_order([later, earlier, w(5)])] == [
        earlier, later, w(5)]


def test_order_drops_foreign_names_and_unasked_markers():
    children = ["lease_holder", w(3), r(1), UUID + "__lease__0000000000"]
    assert [c.sequence for c in in_lock_order(children)] == [1, 3]
    assert [c.sequence for c in in_lock_order(children, [EXCLUSIVE])] == [3]


# -- holders and predecessors ------------------------------------------------

def test_exclusive_contender_waits_for_everyone_before_it():
    children = [r(1), w(2), r(3), w(4)]
    # A WriteLock node is blocked by readers and writers.
    assert predecessor(w(4), children, BLOCKED_BY[EXCLUSIVE]) == r(3)
    assert predecessor(w(2), children, BLOCKED_BY[EXCLUSIVE]) == r(1)


def test_reader_waits_only_for_writers_before_it():
    children = [r(1), w(2), r(3), r(5), w(4)]
    assert predecessor(r(1), children, BLOCKED_BY[SHARED]) is None
    assert predecessor(r(3), children, BLOCKED_BY[SHARED]) == w(2)
    assert predecessor(r(5), children, BLOCKED_BY[SHARED]) == w(4)


def test_plain_lock_ignores_readers():
    # kazoo's Lock is blocked by __lock__ nodes only.
    children = [r(1), w(2), r(3)]
    assert predecessor(w(2), children, [EXCLUSIVE]) is None


def test_predecessor_is_the_latest_earlier_blocker_by_integer():
    children = [w(9), w(10), w(8), w(11), "lease_holder"]
    assert predecessor(w(11), children, [EXCLUSIVE]) == w(10)
    first = UUID + "__lock__-2147483648"
    second = UUID + "__lock__-2147483647"
    assert predecessor(second, [second, first], [EXCLUSIVE]) == first
    assert predecessor(first, [second, first], [EXCLUSIVE]) is None


def test_predecessor_of_a_node_that_is_gone():
    with pytest.raises(LookupError):
        predecessor(w(3), [w(1), w(2)], [EXCLUSIVE])


def test_holders_of_a_read_write_lock():
    contenders = in_lock_order([r(1), r(2), w(3), r(4)])
    assert holding(contenders) == [True, True, False, False]
    assert holding(in_lock_order([w(1), r(2), r(3)])) == [True, False, False]
    assert holding(in_lock_order([w(1), w(2)])) == [True, False]
    assert holding([]) == []


def test_waits_for_a_read_write_lock():
    contenders = in_lock_order([r(1), r(2), w(3), r(4)])
    assert [c.sequence for c in waits_for(contenders, 2)] == [1, 2]
    assert [c.sequence for c in waits_for(contenders, 3)] == [3]
    assert waits_for(contenders, 1) == []


def test_rules_may_be_given():
    # Plain Locks beside ReadLocks: neither sees the other.
    rules = {EXCLUSIVE: frozenset([EXCLUSIVE]), SHARED: frozenset()}
    contenders = in_lock_order([r(1), w(2), r(3), w(4)])
    assert holding(contenders, rules) == [True, True, True, False]
    assert [c.node for c in waits_for(contenders, 3, rules)] == [w(2)]


@given(st.lists(st.tuples(st.sampled_from([EXCLUSIVE, SHARED]),
                          st.integers(-2 ** 31, 2 ** 31 - 1)),
                unique_by=lambda t: t[1], max_size=12))
def test_holder_waits_for_and_predecessor_agree(contenders):
    # "-" and ten digits for the negative ones, as the pattern wants.
    children = ["%s%s%0*d" % (UUID, marker, 10 + (sequence < 0), sequence)
                for marker, sequence in contenders]
    ordered = in_lock_order(children)
    assert [c.sequence for c in ordered] == sorted(c.sequence for c in ordered)
    held = holding(ordered)
    for index, contender in enumerate(ordered):
        blockers = waits_for(ordered, index)
        assert held[index] == (not blockers)
        expected = blockers[-1].node if blockers else None
        assert predecessor(contender.node, children,
                           BLOCKED_BY[contender.marker]) == expected


def test_lock_recipes_use_these_rules():
    """fastzk.lock's node names are the ones defined here."""
    from fastzk import lock

    assert lock.Lock._NODE_NAME == EXCLUSIVE
    assert lock.ReadLock._NODE_NAME == SHARED
    assert set(lock.WriteLock._EXCLUDE_NAMES) == BLOCKED_BY[EXCLUSIVE]
    assert set(lock.ReadLock._EXCLUDE_NAMES) == BLOCKED_BY[SHARED]
    assert lock.predecessor is locknames.predecessor


def test_pattern_is_kazoos_shape():
    """Group 1 is the sequence, as kazoo's ``Lock._contenders_re``: kazoo's
    own methods run on fastzk's locks (``KazooLock._get_predecessor``)."""
    match = locknames.contender_pattern([EXCLUSIVE, SHARED]).search(r(12))
    assert match.groups() == ("0000000012",)
