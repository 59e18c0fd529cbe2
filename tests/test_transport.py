"""fastzk.drivers.transport: opening connections."""

import socket

import pytest

from fastzk.drivers.transport import PlainTransport, TransportStopped
from fastzk.testing.zkserver import free_port


def test_plain_transport_connects_without_nagle():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        sock = PlainTransport().connect("127.0.0.1",
                                        listener.getsockname()[1], 2.0,
                                        lambda: False)
        try:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            assert sock.gettimeout() == 2.0
        finally:
            sock.close()
    finally:
        listener.close()


def test_plain_transport_refused():
    with pytest.raises(ConnectionRefusedError):
        PlainTransport().connect("127.0.0.1", free_port(), 2.0, lambda: False)


def test_plain_transport_gives_up_when_stopped():
    # A listener whose backlog is full leaves the next connect pending.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        with pytest.raises((TransportStopped, OSError)) as info:
            for _ in range(8):
                fillers.append(PlainTransport().connect(
                    "127.0.0.1", listener.getsockname()[1], 2.0,
                    lambda: bool(fillers)))
        if not isinstance(info.value, TransportStopped):
            pytest.fail("connect did not stay pending: %r" % (info.value,))
    finally:
        for sock in fillers:
            sock.close()
        listener.close()
