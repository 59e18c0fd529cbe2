"""Helpers shared by the watch and cache tests."""

import struct
import time

from kazoo.protocol.states import KazooState

from fastzk import KazooClient
from fastzk.protocol.constants import UNIMPLEMENTED
from fastzk.testing.proxyframes import encode_frame, reply_err, reply_xid


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("timed out waiting for %s" % what)


class StateLog(object):
    """The KazooState values a client reports from now on, in order."""

    def __init__(self, client):
        self.states = []
        client.add_listener(self.states.append)


def disconnect(client, proxy):
    """Cut the client's connection through ``proxy`` and keep it out until
    :func:`reconnect`; returns the StateLog that saw SUSPENDED."""
    log = StateLog(client)
    proxy.reject(True)
    proxy.cut()
    wait_for(lambda: KazooState.SUSPENDED in log.states, what="SUSPENDED")
    return log


def reconnect(client, proxy, log):
    """Let the client back through ``proxy`` and wait for CONNECTED."""
    proxy.reject(False)
    wait_for(lambda: KazooState.CONNECTED in log.states, what="CONNECTED")


def server_watches(zk_server, session_id):
    """Paths with a data, exist or persistent watch of ``session_id``
    (``wchc``; child watches are not listed by the server)."""
    found = {}
    current = None
    for line in zk_server.command("wchc").splitlines():
        if line.startswith("0x"):
            current = int(line, 16)
            found.setdefault(current, set())
        elif line.startswith("\t") and current is not None:
            found[current].add(line.strip())
    return found.get(session_id, set())


class WireEvents(object):
    """The watch notifications the server sends through ``proxy``, as
    (type, path) pairs (``wchc`` does not list child watches; this does)."""

    def __init__(self, proxy):
        self.events = []
        self.hook = proxy.cut_on_reply(self._see)

    def _see(self, body):
        if len(body) >= 28 and struct.unpack_from(">i", body, 0)[0] == -1:
            event_type, _state, size = struct.unpack_from(">iii", body, 16)
            self.events.append((event_type, body[28:28 + size].decode()))
        return False  # never cut

    def close(self):
        self.hook.cancel()


def start_client(hosts, **kwargs):
    kwargs.setdefault("timeout", 10.0)
    client = KazooClient(hosts, **kwargs)
    client.start()
    return client


def stop_client(client):
    client.stop()
    client.close()


def cut_live_connection(client, proxy):
    """Cut the client's connection (waiting for it to be up first)."""
    wait_for(lambda: client.connected and proxy.active_connections,
             what="a connection to cut")
    assert proxy.cut() >= 1


def _is_add_watch_reply(body):
    # ZooKeeper answers addWatch with an ErrorResponse (the header, then an
    # int 0); no other request a starting TreeCache sends before it is
    # answered with those 20 bytes.
    return (len(body) == 20 and reply_xid(body) > 0 and reply_err(body) == 0
            and body[16:] == b"\0\0\0\0")


def _unimplemented(body):
    # A ZooKeeper before 3.6 answers addWatch with UNIMPLEMENTED.
    return encode_frame(bytes(body[:12]) + struct.pack(">i", UNIMPLEMENTED))


def answer_add_watch_unimplemented(proxy):
    """Make ``proxy`` answer the next addWatch as a server without it
    (before ZooKeeper 3.6) does; returns the proxy's Hook."""
    return proxy.corrupt_reply(_is_add_watch_reply, _unimplemented)
