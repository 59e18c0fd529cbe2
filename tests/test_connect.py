"""``KazooClient.start(timeout)`` against servers that refuse, do not
resolve or never answer: it keeps kazoo's contract (KazooTimeoutError
"Connection time-out" once ``timeout`` has passed) and keeps to ``timeout``.
"""

import socket
import time

import pytest
from kazoo.handlers.threading import KazooTimeoutError

from fastzk import KazooClient
from fastzk.testing.zkserver import free_port

#: start(timeout=0.5) must be over by then: the timeout, the stop that
#: follows it, and room for a loaded machine.
START_BOUND = 1.5


def _silent_listener():
    """A listening socket that never accepts: the kernel completes the TCP
    handshake, nobody ever answers ZooKeeper's."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener


def _full_backlog_listener():
    """A listening socket whose accept queue is full: further connection
    attempts get no answer at all (their SYNs are dropped)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    probe = socket.socket()
    probe.settimeout(0.5)
    try:
        with pytest.raises(OSError):
            probe.connect(listener.getsockname())
    finally:
        probe.close()
    return listener, fillers


def _timed_start(hosts, timeout):
    client = KazooClient(hosts=hosts)
    began = time.monotonic()
    with pytest.raises(KazooTimeoutError) as info:
        client.start(timeout=timeout)
    elapsed = time.monotonic() - began
    assert client._connection.connection_stopped.is_set()
    return elapsed, str(info.value)


def test_start_keeps_to_its_timeout_when_the_handshake_gets_no_answer():
    listener = _silent_listener()
    try:
        hosts = "127.0.0.1:%d" % listener.getsockname()[1]
        elapsed, message = _timed_start(hosts, 0.5)
    finally:
        listener.close()
    assert 0.5 <= elapsed < START_BOUND, elapsed
    assert message.startswith("Connection time-out"), message


def test_start_keeps_to_its_timeout_when_the_connect_gets_no_answer():
    listener, fillers = _full_backlog_listener()
    try:
        hosts = "127.0.0.1:%d" % listener.getsockname()[1]
        elapsed, message = _timed_start(hosts, 0.5)
    finally:
        for sock in fillers + [listener]:
            sock.close()
    assert 0.5 <= elapsed < START_BOUND, elapsed
    assert message.startswith("Connection time-out"), message


def test_start_timeout_says_why_each_server_failed():
    refused = "127.0.0.1:%d" % free_port()
    unresolved = "no-such-host.invalid:2181"
    elapsed, message = _timed_start(refused + "," + unresolved, 0.5)
    assert elapsed < START_BOUND, elapsed
    assert message.startswith("Connection time-out ("), message
    assert refused + ": [Errno" in message and "refused" in message, message
    assert unresolved + ": [Errno" in message, message


def test_start_accepts_an_infinite_timeout(zk_hosts):
    client = KazooClient(hosts=zk_hosts)
    try:
        client.start(timeout=float("inf"))
        assert client.connected
    finally:
        client.stop()
        client.close()


def test_host_order_leaves_the_global_random_state_alone():
    """Randomized host order comes from fastzk's own generator."""
    import logging
    import random

    from fastzk.drivers.hosts import HostRounds

    rounds = HostRounds(logging.getLogger("test"))
    addresses = [("h%d" % i, "10.0.0.%d" % i, 2181) for i in range(20)]
    random.seed(7)
    state = random.getstate()
    orders = {tuple(rounds.begin(list(addresses), True)) for _ in range(20)}
    assert random.getstate() == state
    assert len(orders) > 1  # still shuffled
    assert rounds.begin(list(addresses), False) == addresses
