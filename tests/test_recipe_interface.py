"""The recipes reach fastzk's client through one interface
(fastzk.kazooface.fastpath).

On fastzk's client the lock takes its fast path (reads answered from a
watched children list, a create and its children read sent together); on
kazoo's client it takes kazoo's path.  Requests are counted with the
session's xid, which every request but pings advances by one.
"""

import threading

import pytest
from kazoo.exceptions import LockTimeout

from fastzk import KazooClient
from fastzk.kazooface.fastpath import FastPath, fast_path_of
from fastzk.lock import Lock
from fastzk.protocol import constants as zk
from fastzk.testing.proxy import reply_xid, request_opcode, request_xid


def _requests_sent(client):
    """The xid of the last request ``client``'s session sent."""
    return client._connection.machine.xid


def _held_lock(client, path="/lk"):
    holder = client.Lock(path, "holder")
    assert holder.acquire(blocking=False)
    return holder


def test_fast_path_of_is_fastzk_clients_own_and_none_for_kazoos(
        zk, kazoo_client):
    fast = fast_path_of(zk)
    assert isinstance(fast, FastPath)
    assert fast_path_of(zk) is fast
    assert fast_path_of(kazoo_client) is None
    assert Lock(zk, "/lk")._fast is fast
    assert Lock(kazoo_client, "/lk")._fast is None


def test_failed_non_blocking_attempt_is_one_request_writing_nothing(zk):
    holder = _held_lock(zk)
    before = zk.exists("/lk")
    sent = _requests_sent(zk)
    assert not Lock(zk, "/lk").acquire(blocking=False)
    assert _requests_sent(zk) == sent + 1
    assert zk.exists("/lk").pzxid == before.pzxid  # no child made or removed
    holder.release()


def test_cached_lock_checks_answer_a_repeated_failed_attempt_locally(
        zk_hosts):
    client = KazooClient(zk_hosts, timeout=10.0, cached_lock_checks=True)
    client.start()
    try:
        holder = _held_lock(client)
        contender = Lock(client, "/lk")
        sent = _requests_sent(client)
        assert not contender.acquire(blocking=False)
        assert _requests_sent(client) == sent + 1  # read with a child watch
        assert not contender.acquire(blocking=False)
        assert _requests_sent(client) == sent + 1  # the watched list answers
        holder.release()
    finally:
        client.stop()
        client.close()


def test_create_and_children_read_go_out_before_the_create_reply(
        proxied, proxy):
    proxied.ensure_path("/lk")
    seen = []
    lock = threading.Lock()

    def request(body):
        with lock:
            seen.append(("request", request_xid(body), request_opcode(body)))
        return False  # record only: never cut

    def reply(body):
        with lock:
            seen.append(("reply", reply_xid(body), None))
        return False

    proxy.cut_on_request(request)
    proxy.cut_on_reply(reply)
    # The server cannot see a request, nor the proxy its reply, sooner
    # than 0.5 s after the proxy read it: a read sent only after the
    # create's reply would reach the proxy after that reply.  (Half a
    # second, not less: a loaded machine can stall a thread for 100 ms.)
    proxy.delay(0.5)
    try:
        contender = Lock(proxied, "/lk")
        assert contender.acquire(blocking=False)
    finally:
        proxy.delay(0)
        proxy.clear_hooks()
    with lock:
        events = list(seen)
    creates = [xid for kind, xid, op in events
               if kind == "request" and op in (zk.CREATE, zk.CREATE2)]
    assert len(creates) == 1
    create_reply = events.index(("reply", creates[0], None))
    reads_after_create = [
        i for i, (kind, xid, op) in enumerate(events)
        if kind == "request" and xid > creates[0]
        and op in (zk.GET_CHILDREN, zk.GET_CHILDREN2)]
    assert reads_after_create and reads_after_create[0] < create_reply
    contender.release()


def test_lock_on_kazoos_client_takes_kazoos_path(kazoo_client):
    holder = Lock(kazoo_client, "/lk", "holder")
    assert holder.acquire(blocking=False)
    contender = Lock(kazoo_client, "/lk")
    assert not contender.acquire(blocking=False)
    with pytest.raises(LockTimeout):
        contender.acquire(timeout=0.3)  # bounded through the async calls
    assert kazoo_client.get_children("/lk") == [holder.node]
    holder.release()
    assert contender.acquire(timeout=5)
    contender.release()
    assert kazoo_client.get_children("/lk") == []
