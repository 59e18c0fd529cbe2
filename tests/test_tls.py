"""fastzk over TLS: kazoo's ``use_ssl`` parameters against real servers.

The whole client on a secure client port (reads, locks, watches,
pipelining, a frame of many TLS records, reconnect and expiry through the
fault proxy, failover in a TLS ensemble), and every way a TLS connection
fails: each a kazoo exception saying why, long before ``start()``'s
timeout when retrying cannot help.
"""

import logging
import os
import ssl
import sys
import threading
import time
import uuid

import pytest
from kazoo.exceptions import AuthFailedError, ConfigurationError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _secure import (  # noqa: E402, F401 (fixtures)
    BAD_CERTIFICATES,
    bad_certificate_cases,
    secure_servers,
    tls_ensemble,
    tls_files,
    tls_kwargs,
)
from fastzk import KazooClient  # noqa: E402
from fastzk._core import codec  # noqa: E402
from fastzk.drivers.tls import (  # noqa: E402
    TlsAuthFailedError,
    TlsSocket,
    TlsTransport,
    client_context,
)
from fastzk.testing.proxy import TcpProxy  # noqa: E402

START_TIMEOUT = 20.0
# A failure retrying cannot cure must end start() well before this.
FAILING_START_TIMEOUT = 8.0
PROMPT = FAILING_START_TIMEOUT / 4


def _started(hosts, **kwargs):
    kwargs.setdefault("timeout", 10.0)
    client = KazooClient(hosts=hosts, **kwargs)
    client.start(timeout=START_TIMEOUT)
    return client


def _close(client):
    try:
        client.stop()
    finally:
        client.close()


def _wait_for(predicate, timeout=START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %.0fs" % timeout)
        time.sleep(0.02)


@pytest.fixture
def node():
    return "/tls-" + uuid.uuid4().hex


@pytest.fixture
def tls_client(secure_servers, tls_files):
    client = _started(secure_servers.need.secure_address,
                      **tls_kwargs(tls_files))
    yield client
    _close(client)


# ---------------------------------------------------------------------------
# The client over TLS
# ---------------------------------------------------------------------------

def test_create_get_children_over_tls12(tls_client, node):
    tls_client.create(node, b"over tls")
    tls_client.create(node + "/a")
    tls_client.create(node + "/b")
    assert tls_client.get(node)[0] == b"over tls"
    assert sorted(tls_client.get_children(node)) == ["a", "b"]
    sock = tls_client._connection._socket
    assert isinstance(sock, TlsSocket)
    assert sock.version() == "TLSv1.2"


def test_tls13_with_hostname_check(secure_servers, tls_files, node):
    # The tls13 server requires SASL as well: requests other than the
    # session handshake are refused, so look at the connection only.
    client = _started(secure_servers.open.secure_address,
                      **tls_kwargs(tls_files, certfile=None, keyfile=None,
                                    check_hostname=True))
    try:
        client.create(node, b"no client certificate")
        assert client.get(node)[0] == b"no client certificate"
    finally:
        _close(client)
    raw = TlsTransport(client_context(
        ca=tls_files.ca, certfile=tls_files.client_cert,
        keyfile=tls_files.client_key, check_hostname=True))
    server = secure_servers.tls13
    sock = raw.connect(server.host, server.secure_port, 5.0, lambda: False,
                       server_name=server.host)
    try:
        assert sock.version() == "TLSv1.3"
    finally:
        sock.close()


def test_lock_over_tls(secure_servers, tls_files, node):
    holder = _started(secure_servers.need.secure_address,
                      **tls_kwargs(tls_files))
    contender = _started(secure_servers.need.secure_address,
                         **tls_kwargs(tls_files))
    try:
        held = holder.Lock(node, "holder")
        assert held.acquire()
        other = contender.Lock(node, "contender")
        assert not other.acquire(blocking=False)
        got = []
        waiter = threading.Thread(target=lambda: got.append(
            other.acquire(timeout=START_TIMEOUT)))
        waiter.start()
        time.sleep(0.2)
        held.release()
        waiter.join(START_TIMEOUT)
        assert got == [True]
        other.release()
    finally:
        _close(holder)
        _close(contender)


def test_watch_over_tls(tls_client, node):
    events = []
    fired = threading.Event()

    def watch(event):
        events.append(event)
        fired.set()

    tls_client.create(node, b"1")
    tls_client.get(node, watch=watch)
    tls_client.set(node, b"2")
    assert fired.wait(START_TIMEOUT)
    assert events[0].path == node and events[0].type == "CHANGED"


def test_pipelined_get_children_over_tls(tls_client, node):
    tls_client.create(node)
    for name in ("x", "y", "z"):
        tls_client.create(node + "/" + name)
    results = [tls_client.get_children_async(node) for _ in range(2000)]
    for result in results:
        assert sorted(result.get(timeout=START_TIMEOUT)) == ["x", "y", "z"]


def test_large_reply_spans_many_tls_records(tls_client, node):
    data = os.urandom(1000 * 1000)
    tls_client.create(node, data)
    assert tls_client.get(node)[0] == data
    # And pipelined behind small replies, so records and frames interleave.
    small = [tls_client.exists_async(node) for _ in range(50)]
    big = tls_client.get_async(node)
    assert all(r.get(timeout=START_TIMEOUT) is not None for r in small)
    assert big.get(timeout=START_TIMEOUT)[0] == data


def test_reconnect_through_the_proxy_keeps_session_and_watch(
        secure_servers, tls_files, node):
    server = secure_servers.need
    with TcpProxy(server.host, server.secure_port) as proxy:
        client = _started(proxy.address, **tls_kwargs(tls_files))
        try:
            client.create(node, b"before")
            session = client.client_id[0]
            fired = threading.Event()
            client.get(node, watch=lambda event: fired.set())
            states = []
            client.add_listener(states.append)
            proxy.cut()
            _wait_for(lambda: KazooState.SUSPENDED in states
                      and client.state == KazooState.CONNECTED)
            assert client.client_id[0] == session
            client.set(node, b"after")
            assert fired.wait(START_TIMEOUT)
            assert client.get(node)[0] == b"after"
            assert proxy.connections_accepted >= 2
        finally:
            _close(client)


def test_expiry_over_tls(secure_servers, tls_files, node):
    server = secure_servers.need
    with TcpProxy(server.host, server.secure_port) as proxy:
        client = _started(proxy.address, timeout=4.0,
                          **tls_kwargs(tls_files))
        try:
            session = client.client_id[0]
            client.create(node, ephemeral=True)
            states = []
            client.add_listener(states.append)
            proxy.freeze()
            _wait_for(lambda: KazooState.LOST in states)
            proxy.unfreeze()
            _wait_for(lambda: client.state == KazooState.CONNECTED)
            assert client.client_id[0] != session
            _wait_for(lambda: client.exists(node) is None)
        finally:
            _close(client)


def _peer_port(client):
    """The server port ``client``'s socket is connected to, or None (no
    socket, or one whose peer is gone and the client has not noticed
    yet: getpeername() then fails with ENOTCONN)."""
    sock = client._connection._socket
    try:
        return None if sock is None else sock.getpeername()[1]
    except OSError:
        return None


def test_failover_in_a_tls_ensemble(tls_ensemble, tls_files, node):
    client = _started(tls_ensemble.secure_hosts, **tls_kwargs(tls_files))
    try:
        client.create(node, b"before failover")
        port = client._connection._socket.getpeername()[1]
        member = next(m for m in tls_ensemble.servers
                      if m.secure_port == port)
        member.kill()
        try:
            _wait_for(lambda: client.connected
                      and _peer_port(client) not in (None, port))
            client.sync(node)
            assert client.get(node)[0] == b"before failover"
            assert client._connection._socket.version() == "TLSv1.2"
        finally:
            member.start(wait=False)
            tls_ensemble.wait_ready()
    finally:
        _close(client)


# ---------------------------------------------------------------------------
# The frame reader over TLS
# ---------------------------------------------------------------------------

def test_frame_reader_takes_plaintext_the_tls_layer_buffered(
        secure_servers, tls_files):
    # The connect response arrives in one TLS record.  Once part of it has
    # been read, the rest sits decrypted in the TLS layer and the socket
    # has nothing more to poll for: the reader must take it at once.
    transport = TlsTransport(client_context(
        ca=tls_files.ca, certfile=tls_files.client_cert,
        keyfile=tls_files.client_key))
    server = secure_servers.need
    sock = transport.connect(server.host, server.secure_port, 5.0,
                             lambda: False)
    try:
        sock.sendall(codec.encode_connect(0, 10000, 0, b"\0" * 16, False))
        head = b""
        deadline = time.monotonic() + 5.0
        while not head and time.monotonic() < deadline:
            try:
                head = sock.recv(4)
            except ssl.SSLWantReadError:
                time.sleep(0.01)
        assert len(head) == 4 and sock.pending() > 0
        reader = codec.FrameReader(1 << 20)
        reader.feed(head)
        started = time.monotonic()
        assert reader.read_from(sock, 2.0) > 0
        assert time.monotonic() - started < 1.0
        assert len(reader.next_frame()) >= 36
    finally:
        sock.close()


def test_frame_reader_takes_every_tls_record_in_one_read(secure_servers,
                                                        tls_files):
    # Pipelined pings: the server answers each in a TLS record of its own
    # (OpenSSL hands out one record per SSL_read).  The compiled reader
    # decrypts all that have arrived in one call; both readers end with
    # every reply, whole and in order, and nothing left in the TLS layer.
    import struct

    import fastzk

    transport = TlsTransport(client_context(
        ca=tls_files.ca, certfile=tls_files.client_cert,
        keyfile=tls_files.client_key))
    server = secure_servers.need
    sock = transport.connect(server.host, server.secure_port, 5.0,
                             lambda: False)
    pings = 50
    try:
        sock.sendall(codec.encode_connect(0, 10000, 0, b"\0" * 16, False))
        reader = codec.FrameReader(1 << 20)
        deadline = time.monotonic() + 5.0
        while reader.next_frame() is None:
            assert time.monotonic() < deadline, "no connect response"
            reader.read_from(sock, 1.0)
        codec.send_all(sock, struct.pack(">iii", 8, -2, 11) * pings)
        time.sleep(0.5)  # every reply in
        calls = 0
        replies = []
        while len(replies) < pings and time.monotonic() < deadline + 5.0:
            frame = reader.next_frame()
            if frame is None:
                calls += 1
                reader.read_from(sock, 1.0)
                continue
            replies.append(frame)
        assert [struct.unpack(">iqi", r) [0::2] for r in replies] == \
            [(-2, 0)] * pings
        assert reader.next_frame() is None and sock.pending() == 0
        if fastzk.EXTENSIONS:
            assert calls == 1
    finally:
        sock.close()


def test_frame_reader_times_out_on_a_quiet_tls_socket(secure_servers,
                                                      tls_files):
    transport = TlsTransport(client_context(
        ca=tls_files.ca, certfile=tls_files.client_cert,
        keyfile=tls_files.client_key))
    server = secure_servers.need
    sock = transport.connect(server.host, server.secure_port, 5.0,
                             lambda: False)
    try:
        reader = codec.FrameReader(1 << 20)
        started = time.monotonic()
        assert reader.read_from(sock, 0.3) == 0
        assert 0.25 < time.monotonic() - started < 2.0
    finally:
        sock.close()


# ---------------------------------------------------------------------------
# Failures
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", BAD_CERTIFICATES)
def test_certificate_failures_end_start_at_once(secure_servers, tls_files,
                                                case, caplog):
    hosts, kwargs, reason = bad_certificate_cases(
        tls_files, secure_servers)[case]
    client = KazooClient(hosts=hosts, **kwargs)
    states = []
    client.add_listener(states.append)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        with pytest.raises(TlsAuthFailedError) as info:
            client.start(timeout=FAILING_START_TIMEOUT)
    elapsed = time.monotonic() - started
    try:
        assert elapsed < PROMPT
        assert reason in str(info.value)
        assert "TLS handshake failed" in str(info.value)
        # Still what kazoo code expects from a failing start().
        assert isinstance(info.value, KazooTimeoutError)
        assert isinstance(info.value, AuthFailedError)
        failed = [r for r in caplog.records
                  if "failed" in r.getMessage() and r.levelno >= 30]
        assert len(failed) <= 1 + 1  # the failure and "giving up"
    finally:
        _close(client)


def test_tls_client_on_the_plain_port_says_so(secure_servers, tls_files,
                                              caplog):
    client = KazooClient(hosts=secure_servers.need.address,
                         **tls_kwargs(tls_files))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        with pytest.raises(KazooTimeoutError) as info:
            client.start(timeout=3.0)
    elapsed = time.monotonic() - started
    try:
        assert elapsed < 3.0 + 2.0
        assert "secure client port" in str(info.value)
        warned = [r for r in caplog.records if "secure client port"
                  in r.getMessage()]
        assert len(warned) == 1  # once, not per retry
    finally:
        _close(client)


def test_plain_client_on_the_tls_port_says_so(secure_servers):
    client = KazooClient(hosts=secure_servers.need.secure_address)
    started = time.monotonic()
    with pytest.raises(KazooTimeoutError) as info:
        client.start(timeout=3.0)
    try:
        assert time.monotonic() - started < 3.0 + 2.0
        assert "use_ssl=True" in str(info.value)
    finally:
        _close(client)


@pytest.mark.parametrize("password", ["wrong", None],
                         ids=["wrong password", "no password"])
def test_encrypted_key_needs_its_password(tls_files, password):
    kwargs = tls_kwargs(tls_files, keyfile=tls_files.client_key_encrypted,
                         keyfile_password=password)
    with pytest.raises(ConfigurationError) as info:
        KazooClient(hosts="127.0.0.1:1", **kwargs)
    assert tls_files.client_key_encrypted in str(info.value)
    if password is None:
        assert "no keyfile_password" in str(info.value)
    else:
        assert "wrong keyfile_password" in str(info.value)


def test_encrypted_key_with_its_password(secure_servers, tls_files, node):
    client = _started(secure_servers.need.secure_address,
                      **tls_kwargs(
                          tls_files, keyfile=tls_files.client_key_encrypted,
                          keyfile_password=tls_files.client_key_password))
    try:
        assert client.exists("/") is not None
    finally:
        _close(client)


def test_bad_tls_configuration_is_refused_at_construction(tls_files):
    with pytest.raises(ConfigurationError, match="nonexistent"):
        KazooClient(use_ssl=True, ca="/nonexistent/ca.pem")
    with pytest.raises(ConfigurationError, match="verify_certs"):
        KazooClient(use_ssl=True, verify_certs=False, check_hostname=True)


def test_verify_certs_false_accepts_any_server(secure_servers, tls_files):
    client = _started(secure_servers.expired.secure_address,
                      **tls_kwargs(tls_files, ca=None, verify_certs=False))
    try:
        assert client.exists("/") is not None
    finally:
        _close(client)


def test_context_follows_kazoo_defaults(tls_files):
    context = client_context(ca=tls_files.ca)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert not context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.sslsocket_class is TlsSocket
