"""The session's states (fastzk.protocol.states), with no server.

The mapping from ZooKeeper's KeeperState to what applications see
(KazooState) must be kazoo's: it is checked against kazoo's own client,
fed the same sequences of states.
"""

import itertools

import pytest
from kazoo.client import KazooClient as KazooOriginal
from kazoo.protocol.states import KazooState, KeeperState

from fastzk.protocol.session import SessionMachine
from fastzk.protocol.states import LOST_STATES, SessionStates, kazoo_state_after

ALL = (KeeperState.CONNECTING, KeeperState.CONNECTED,
       KeeperState.CONNECTED_RO, KeeperState.EXPIRED_SESSION,
       KeeperState.AUTH_FAILED, KeeperState.CLOSED)


def _kazoo_reports(sequence):
    """What kazoo's own client tells its listeners for ``sequence``."""
    client = KazooOriginal(hosts="127.0.0.1:1")
    seen = []
    client.add_listener(seen.append)
    client._notify_pending = lambda state: None
    client._reset_watchers = lambda: None
    for state in sequence:
        client._session_callback(state)
    client.handler.stop()
    return seen


def _fastzk_reports(sequence):
    reported = []
    states = SessionStates(lambda state: None)
    for state in sequence:
        before = states.kazoo_state
        {KeeperState.CONNECTING: states.connecting,
         KeeperState.CONNECTED: states.connected,
         KeeperState.CONNECTED_RO: lambda: states.connected(read_only=True),
         KeeperState.EXPIRED_SESSION: states.expired,
         KeeperState.AUTH_FAILED: states.auth_failed,
         KeeperState.CLOSED: states.closed}[state]()
        assert states.current == state
        if states.kazoo_state != before:
            reported.append(states.kazoo_state)
    return reported


@pytest.mark.parametrize("sequence", list(itertools.product(ALL, repeat=3)),
                         ids=lambda seq: ">".join(s[:6] for s in seq))
def test_reports_what_kazoo_reports(sequence):
    assert _fastzk_reports(sequence) == _kazoo_reports(sequence)


def test_a_lost_session_stays_lost_while_connecting_again():
    for lost in LOST_STATES:
        assert kazoo_state_after(lost, KeeperState.CONNECTING) is None
        assert (kazoo_state_after(lost, KeeperState.CONNECTED)
                == KazooState.CONNECTED)
    assert (kazoo_state_after(KeeperState.CONNECTED, KeeperState.CONNECTING)
            == KazooState.SUSPENDED)


def test_an_unknown_state_is_a_suspension_as_in_kazoo():
    for previous in ALL:
        states = SessionStates(lambda state: None)
        states._enter(previous)
        reported = states.kazoo_state
        states._enter(-250)
        assert states.kazoo_state == KazooState.SUSPENDED
        expected = _kazoo_reports([previous, -250])
        assert expected[-1] == KazooState.SUSPENDED
        assert len(expected) == (1 if reported == KazooState.LOST else 2)


def test_each_state_is_notified_once():
    notified = []
    states = SessionStates(notified.append)
    assert states.current == KeeperState.CLOSED and states.lost
    states.connecting()
    states.connecting()
    states.connected()
    states.connected()
    states.connecting()
    states.expired()
    states.connecting()
    assert notified == [KeeperState.CONNECTING, KeeperState.CONNECTED,
                        KeeperState.CONNECTING, KeeperState.EXPIRED_SESSION,
                        KeeperState.CONNECTING]
    assert states.kazoo_state == KazooState.LOST and not states.lost


def test_the_machine_holds_the_states():
    class Identity:
        _session_id = None
        _session_passwd = b"\0" * 16
        last_zxid = 0

    notified = []
    machine = SessionMachine(Identity(), 10000, on_state=notified.append)
    machine.states.connected(read_only=True)
    assert notified == [KeeperState.CONNECTED_RO]
    assert machine.states.kazoo_state == KazooState.CONNECTED
