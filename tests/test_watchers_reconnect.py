"""DataWatch and ChildrenWatch across a reconnection within the session:
each real change is reported once, and nothing is reported again unchanged
(real ZooKeeper, the connection cut through the proxy)."""

import time

import pytest
from kazoo.protocol.states import EventType

from _watchlib import disconnect, reconnect, wait_for


def settle(client):
    """Let the reads that follow a reconnection (the session listener's
    and the catch-up events') finish and call back."""
    client.sync("/")
    time.sleep(0.3)
    client.sync("/")


def children_log(client, path, send_event):
    calls = []
    if send_event:
        client.ChildrenWatch(path, send_event=True, func=lambda kids, event:
                             calls.append((sorted(kids),
                                           event and event.type)))
    else:
        client.ChildrenWatch(path, lambda kids: calls.append(
            (sorted(kids), None)))
    return calls


@pytest.mark.parametrize("send_event", [False, True])
def test_childrenwatch_reconnect_without_change_calls_nothing(
        proxied, proxy, writer, send_event):
    writer.create("/kids/a", makepath=True)
    calls = children_log(proxied, "/kids", send_event)
    assert calls == [(["a"], None)]
    log = disconnect(proxied, proxy)
    reconnect(proxied, proxy, log)
    settle(proxied)
    assert calls == [(["a"], None)]
    writer.create("/kids/b")
    wait_for(lambda: len(calls) == 2, what="the watch still set")
    settle(proxied)
    assert [kids for kids, _ in calls] == [["a"], ["a", "b"]]


@pytest.mark.parametrize("change", ["add", "remove", "add-and-remove"])
@pytest.mark.parametrize("send_event", [False, True])
def test_childrenwatch_change_while_disconnected_reported_once(
        proxied, proxy, writer, send_event, change):
    writer.create("/kids/a", makepath=True)
    calls = children_log(proxied, "/kids", send_event)
    log = disconnect(proxied, proxy)
    # The writer reaches the server directly, not through the proxy.
    if change == "add":
        writer.create("/kids/b")
        expected = ["a", "b"]
    elif change == "remove":
        writer.delete("/kids/a")
        expected = []
    else:
        # The same names again, but the children did change: reported.
        writer.create("/kids/b")
        writer.delete("/kids/b")
        expected = ["a"]
    reconnect(proxied, proxy, log)
    wait_for(lambda: len(calls) >= 2, what="the change reported")
    settle(proxied)
    assert [kids for kids, _ in calls] == [["a"], expected]
    if send_event:
        assert calls[1][1] in (None, EventType.CHILD)
    writer.create("/kids/c")
    wait_for(lambda: len(calls) == 3, what="the watch still set")
    settle(proxied)
    assert calls[2][0] == sorted(expected + ["c"])
    assert len(calls) == 3


class DataLog(object):
    def __init__(self):
        self.calls = []

    def __call__(self, data, stat, event):
        self.calls.append((data, stat and stat.mzxid,
                           event.type if event else None))

    @property
    def values(self):
        return [(data, mzxid) for data, mzxid, _ in self.calls]


def test_datawatch_reconnect_without_change_calls_nothing(proxied, proxy,
                                                          writer):
    writer.create("/d", b"v1")
    log, missing = DataLog(), DataLog()
    proxied.DataWatch("/d", log)
    proxied.DataWatch("/missing", missing)
    first, absent = list(log.calls), list(missing.calls)
    state = disconnect(proxied, proxy)
    reconnect(proxied, proxy, state)
    settle(proxied)
    assert log.calls == first and missing.calls == absent


@pytest.mark.parametrize("change", ["set", "delete", "create"])
def test_datawatch_change_while_disconnected_reported_once(proxied, proxy,
                                                           writer, change):
    if change != "create":
        writer.create("/d", b"v1")
    log = DataLog()
    proxied.DataWatch("/d", log)
    state = disconnect(proxied, proxy)
    if change == "set":
        writer.set("/d", b"v2")
        expected = b"v2"
    elif change == "delete":
        writer.delete("/d")
        expected = None
    else:
        writer.create("/d", b"v2")
        expected = b"v2"
    reconnect(proxied, proxy, state)
    wait_for(lambda: len(log.calls) >= 2, what="the change reported")
    settle(proxied)
    assert [data for data, _, _ in log.calls][1:] == [expected]
