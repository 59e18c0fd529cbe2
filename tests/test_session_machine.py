"""The session state machine driven with hand-built frames, no server.

The frames here are what a FrameReader hands the machine (no length
prefix); the frames the machine produces are checked byte by byte against
the wire format.
"""

import struct
from types import SimpleNamespace

import pytest
from kazoo.exceptions import (
    EXCEPTIONS,
    AuthFailedError,
    ConnectionDropped,
    ConnectionLoss,
    NoNodeError,
    SessionExpiredError,
)
from kazoo.protocol.states import ZnodeStat

from fastzk._core import codec
from fastzk.errors import ProtocolError
from fastzk.protocol import constants as zk
from fastzk.protocol.session import (
    R_CHILDREN,
    R_CLOSE,
    R_DATA_STAT,
    R_KAZOO,
    R_STAT,
    AbandonedSession,
    ConnectionBroken,
    Request,
    SessionClosed,
    SessionMachine,
)
from fastzk.protocol import watches
from _sessionlib import PASSWD, SESSION, Result, connect_response, header


def identity():
    return SimpleNamespace(last_zxid=0, _session_id=None, _session_passwd=None,
                           _protocol_version=None)


def machine(**kwargs):
    events = []
    m = SessionMachine(identity(), 30000,
                       dispatch_watch=lambda *e: events.append(e), **kwargs)
    m.events = events
    return m


# -- frames from the server --------------------------------------------------

def ustring(text):
    data = text.encode("utf-8")
    return struct.pack(">i", len(data)) + data


def stat_bytes(version=0):
    return struct.pack(">qqqqiiiqiiq", 1, 2, 3, 4, version, 0, 0, 0, 5, 0, 6)


def children_reply(xid, zxid, names):
    body = struct.pack(">i", len(names)) + b"".join(ustring(n) for n in names)
    return header(xid, zxid) + body


def data_reply(xid, zxid, data, version=0):
    return (header(xid, zxid) + struct.pack(">i", len(data)) + data
            + stat_bytes(version))


def event(event_type, path, state=zk.STATE_SYNC_CONNECTED):
    return header(zk.WATCH_XID, -1) + struct.pack(">ii", event_type,
                                                   state) + ustring(path)


# -- requests -----------------------------------------------------------------

def get_children(path, watcher=None):
    return Request(zk.GET_CHILDREN,
                   lambda xid: codec.encode_path_watch(
                       xid, zk.GET_CHILDREN, path, watcher is not None),
                   R_CHILDREN, Result(), path, watcher)


def get_data(path, watcher=None):
    # No frame function: the machine encodes reads itself.
    return Request(zk.GET_DATA, None, R_DATA_STAT, Result(), path, watcher)


def exists(path, watcher=None):
    return Request(zk.EXISTS, None, R_STAT, Result(), path, watcher)


def submit(m, req):
    """What a driver does: put the request in flight, send its frame."""
    frame = m.send(req)
    assert frame is not None
    return frame


def connected(m, now=100.0, **kwargs):
    m.connect_request()
    m.receive_connect_response(connect_response(**kwargs), now)
    return m


# -- decoding the frames the machine sends ------------------------------------

def read_vector(frame, offset):
    (count,) = struct.unpack_from(">i", frame, offset)
    offset += 4
    items = []
    for _ in range(count):
        (n,) = struct.unpack_from(">i", frame, offset)
        offset += 4
        items.append(frame[offset:offset + n].decode("utf-8"))
        offset += n
    return items, offset


def read_set_watches(frame):
    """``(opcode, relative_zxid, [vectors])`` of one SetWatches frame."""
    length, xid, opcode, zxid = struct.unpack_from(">iiiq", frame, 0)
    assert length == len(frame) - 4
    assert xid == zk.SET_WATCHES_XID
    offset = 20
    vectors = []
    count = 3 if opcode == zk.SET_WATCHES else 5
    for _ in range(count):
        items, offset = read_vector(frame, offset)
        vectors.append(items)
    assert offset == len(frame)
    return opcode, zxid, vectors


# -- the handshake --------------------------------------------------------------

def test_connect_request_for_a_new_session():
    m = machine()
    frame = m.connect_request()
    assert frame == struct.pack(">iiqiqi", len(frame) - 4, 0, 0, 30000, 0, -1
                                ) + b"\x00"


def test_connect_response_sets_the_session_and_its_deadlines():
    m = machine()
    m.connect_request()
    assert m.receive_connect_response(connect_response(timeout_ms=9000),
                                      50.0) is False
    ident = m.identity
    assert (ident._session_id, ident._session_passwd) == (SESSION, PASSWD)
    assert m.negotiated_timeout == 9000
    assert m.read_timeout == pytest.approx(6.0)
    assert m.ping_interval == pytest.approx(2.0)
    assert m.next_deadline() == pytest.approx(52.0)


def test_resuming_sends_the_session_and_last_zxid():
    m = connected(machine())
    m.identity.last_zxid = 77
    frame = m.connect_request()
    assert frame[4:] == (struct.pack(">iqiqi", 0, 77, 30000, SESSION, 16)
                         + PASSWD + b"\x00")


def test_read_only_connect_response():
    m = machine(read_only=True)
    m.connect_request()
    assert m.receive_connect_response(connect_response(read_only=True), 1.0)
    assert m.connected_read_only


def test_expired_session_reply():
    m = connected(machine())
    m.connect_request()
    with pytest.raises(SessionExpiredError):
        m.receive_connect_response(connect_response(timeout_ms=0,
                                                    session_id=0), 2.0)
    assert m.identity._session_id == SESSION  # left for the driver to reset


def test_expired_reply_for_a_session_the_client_gave_up():
    m = connected(machine())
    m.declare_lost()
    m.connect_request()
    with pytest.raises(ConnectionDropped) as info:
        m.receive_connect_response(connect_response(timeout_ms=0), 2.0)
    assert not isinstance(info.value, SessionExpiredError)
    assert m.abandoned_session is None


def test_reattached_to_a_session_the_client_gave_up():
    m = connected(machine())
    m.declare_lost()
    m.connect_request()
    with pytest.raises(AbandonedSession) as info:
        m.receive_connect_response(connect_response(), 2.0)
    assert info.value.farewell == codec.encode_close(1)
    assert m.abandoned_session is None


def test_truncated_connect_response_is_a_protocol_error():
    m = machine()
    m.connect_request()
    with pytest.raises(ProtocolError):
        m.receive_connect_response(connect_response()[:9], 1.0)


def test_auth_replay_frames_and_replies():
    m = connected(machine())
    frame = m.auth_frame("digest", "user:secret")
    length, xid, opcode, auth_type = struct.unpack_from(">iiii", frame)
    assert (length, xid, opcode, auth_type) == (len(frame) - 4, zk.AUTH_XID,
                                                zk.AUTH, 0)
    assert frame[16:] == ustring("digest") + ustring("user:secret")
    m.receive_auth_reply(header(zk.AUTH_XID))
    with pytest.raises(AuthFailedError):
        m.receive_auth_reply(header(zk.AUTH_XID, 0, AuthFailedError.code))


# -- replies -------------------------------------------------------------------

def test_xids_count_from_one_on_each_session():
    m = connected(machine())
    frames = [submit(m, get_children("/")) for _ in range(3)]
    assert [struct.unpack_from(">i", f, 4)[0] for f in frames] == [1, 2, 3]
    connected(m)
    assert m.encode(get_children("/")) and m.xid == 1


def test_a_request_that_cannot_be_encoded_fails_and_is_not_in_flight():
    m = connected(machine())
    first = get_children("/a")
    bad = Request(zk.GET_CHILDREN, lambda xid: codec.encode_path_watch(
        xid, zk.GET_CHILDREN, 42, False), R_CHILDREN, Result(), "/b", None)
    assert m.send(first) is not None
    assert m.send(bad) is None
    kind, error = bad.result.calls[0]
    assert kind == "error" and isinstance(error, (TypeError, ValueError))
    assert list(m.pending) == [first]
    m.receive(children_reply(first.xid, 10, ["x"]), 101.0)
    assert first.result.value == ["x"] and not m.pending


def test_replies_interleaved_with_watch_events():
    m = connected(machine())
    watcher = object()
    first = get_data("/a", watcher)
    second = get_children("/b", watcher)
    third = get_children("/c")
    for req in (first, second, third):
        submit(m, req)
    m.receive(data_reply(1, 10, b"hello", version=3), 101.0)
    m.receive(event(zk.EVENT_NODE_DATA_CHANGED, "/a"), 101.1)
    m.receive(children_reply(2, 11, ["x", "y"]), 101.2)
    m.receive(event(zk.EVENT_NODE_DELETED, "/unwatched"), 101.3)
    m.receive(children_reply(3, 12, []), 101.4)
    m.receive(event(zk.EVENT_NODE_CHILDREN_CHANGED, "/b"), 101.5)
    data, stat = first.result.value
    assert data == b"hello" and isinstance(stat, ZnodeStat)
    assert stat.version == 3
    assert second.result.value == ["x", "y"]
    assert third.result.value == []
    assert m.events == [(zk.EVENT_NODE_DATA_CHANGED, "/a", [watcher]),
                        (zk.EVENT_NODE_CHILDREN_CHANGED, "/b", [watcher])]
    assert m.identity.last_zxid == 12
    assert not m.pending
    assert m.last_recv == 101.5
    # One-shot: fired once, then gone.
    m.receive(event(zk.EVENT_NODE_DATA_CHANGED, "/a"), 102.0)
    assert len(m.events) == 2


def test_a_read_without_a_frame_asks_for_a_watch_when_it_leaves_one():
    m = connected(machine())
    assert submit(m, get_data("/a")) == codec.encode_path_watch(
        1, zk.GET_DATA, "/a", False)
    assert submit(m, exists("/a", object())) == codec.encode_path_watch(
        2, zk.EXISTS, "/a", True)
    view_read = Request(zk.GET_CHILDREN, None, R_CHILDREN, Result(), "/c")
    view_read.view_token = m.children_view.token()
    assert view_read.view_token is not None
    assert submit(m, view_read) == codec.encode_path_watch(
        3, zk.GET_CHILDREN, "/c", True)


def test_a_watch_a_persistent_one_covers_is_kept_on_the_client():
    m = connected(machine())
    m.watches.add(watches.PERSISTENT, "/a", object())
    watcher = object()
    req = get_data("/a", watcher)
    assert submit(m, req) == codec.encode_path_watch(1, zk.GET_DATA, "/a",
                                                     False)
    m.receive(data_reply(1, 10, b""), 101.0)
    assert m.watches.paths()[0] == ["/a"]
    assert submit(m, get_data("/b", watcher)) == codec.encode_path_watch(
        2, zk.GET_DATA, "/b", True)


def test_exists_on_a_missing_node_leaves_an_exist_watch():
    m = connected(machine())
    req = exists("/gone", object())
    submit(m, req)
    m.receive(header(1, 10, NoNodeError.code), 101.0)
    assert req.result.value is None
    assert m.watches.paths()[1] == ["/gone"]


CODES = sorted(code for code in EXCEPTIONS if code != 0)


@pytest.mark.parametrize("code", CODES)
def test_every_error_code_raises_its_kazoo_exception(code):
    m = connected(machine())
    req = get_data("/a")
    submit(m, req)
    if code == zk.SESSION_CLOSED_REQUIRE_SASL_AUTH:
        # The server closes the connection after it (test_session_sasl).
        with pytest.raises(ConnectionBroken):
            m.receive(header(1, 10, code), 101.0)
    else:
        m.receive(header(1, 10, code), 101.0)
    assert type(req.result.error) is EXCEPTIONS[code]
    assert not m.pending


def test_unknown_error_code_breaks_the_connection():
    m = connected(machine())
    req = get_data("/a")
    submit(m, req)
    with pytest.raises(ConnectionBroken) as info:
        m.receive(header(1, 10, -999), 101.0)
    assert isinstance(info.value.args[0], ProtocolError)
    assert isinstance(req.result.error, ConnectionLoss)


def test_reply_whose_xid_does_not_match_is_a_protocol_error():
    m = connected(machine())
    req = get_children("/")
    submit(m, req)
    with pytest.raises(ConnectionBroken) as info:
        m.receive(children_reply(5, 99, []), 101.0)
    error = info.value.args[0]
    assert isinstance(error, ProtocolError)
    assert "expected 1 received 5" in str(error)
    assert isinstance(req.result.error, ConnectionLoss)
    assert m.identity.last_zxid == 0  # a mismatched reply moves nothing


def test_reply_with_nothing_pending_is_a_protocol_error():
    m = connected(machine())
    with pytest.raises(ConnectionBroken) as info:
        m.receive(children_reply(1, 9, []), 101.0)
    assert isinstance(info.value.args[0], ProtocolError)


def test_undecodable_reply_is_a_protocol_error():
    m = connected(machine())
    req = get_children("/")
    submit(m, req)
    with pytest.raises(ConnectionBroken) as info:
        m.receive(header(1, 9) + struct.pack(">i", 3), 101.0)
    assert isinstance(info.value.args[0], ProtocolError)
    assert isinstance(req.result.error, ConnectionLoss)


def test_watch_event_of_unknown_type_is_a_protocol_error():
    m = connected(machine())
    with pytest.raises(ConnectionBroken) as info:
        m.receive(event(42, "/a"), 101.0)
    assert isinstance(info.value.args[0], ProtocolError)


def test_pings_and_set_watches_replies_complete_nothing():
    m = connected(machine())
    req = get_children("/")
    submit(m, req)
    m.receive(header(zk.PING_XID), 101.0)
    m.receive(header(zk.SET_WATCHES_XID, 0, -6), 101.0)
    assert req.result.calls == []
    assert list(m.pending) == [req]


def test_close_reply_ends_the_session():
    m = connected(machine())
    req = Request(zk.CLOSE, codec.encode_close, R_CLOSE, Result())
    submit(m, req)
    with pytest.raises(ConnectionBroken) as info:
        m.receive(header(1, 5), 101.0)
    assert isinstance(info.value.args[0], SessionClosed)
    assert req.result.value is True


def test_failed_auth_reply_on_a_live_connection():
    told = []
    m = connected(machine(on_auth_failed=lambda: told.append(True)))
    req = Request(zk.AUTH, lambda xid: m.auth_frame("digest", "u:p"), R_STAT,
                  Result())
    submit(m, req)
    with pytest.raises(ConnectionBroken) as info:
        m.receive(header(zk.AUTH_XID, 0, AuthFailedError.code), 101.0)
    assert isinstance(info.value.args[0], AuthFailedError)
    assert isinstance(req.result.error, AuthFailedError)
    assert told == [True]


def test_an_auth_reply_may_pass_replies_to_earlier_requests():
    # The server answers an AuthPacket when it reads it, ahead of the
    # requests still in its pipeline.
    m = connected(machine())
    read = get_data("/d")
    submit(m, read)
    auth = Request(zk.AUTH, lambda xid: m.auth_frame("digest", "u:p"),
                   R_KAZOO, Result())
    submit(m, auth)
    later = get_data("/e")
    submit(m, later)
    m.receive(header(zk.AUTH_XID, 0), 101.0)
    assert auth.result.value is True
    assert read.result.calls == [] and later.result.calls == []
    m.receive(data_reply(read.xid, 7, b"d"), 101.0)
    m.receive(data_reply(later.xid, 8, b"e"), 101.0)
    assert read.result.value[0] == b"d" and later.result.value[0] == b"e"
    assert not m.pending


def test_an_auth_reply_with_no_authpacket_in_flight_breaks_the_connection():
    m = connected(machine())
    submit(m, get_data("/d"))
    with pytest.raises(ConnectionBroken) as info:
        m.receive(header(zk.AUTH_XID, 0), 101.0)
    assert isinstance(info.value.args[0], ProtocolError)


# -- reconnecting ----------------------------------------------------------------

def test_a_reconnect_restores_the_watches():
    m = connected(machine())
    watcher = object()
    submit(m, get_data("/d", watcher))
    submit(m, exists("/e", watcher))
    submit(m, get_children("/c", watcher))
    in_flight = get_data("/lost")
    submit(m, in_flight)
    m.receive(data_reply(1, 40, b""), 101.0)
    m.receive(header(2, 41, NoNodeError.code), 101.0)
    m.receive(children_reply(3, 42, []), 101.0)
    assert m.connection_lost() == [in_flight]
    assert not m.pending
    connect = m.connect_request()
    assert struct.unpack_from(">q", connect, 8)[0] == 42
    connected(m, now=200.0)
    frames = m.set_watches_frames()
    assert [read_set_watches(f) for f in frames] == [
        (zk.SET_WATCHES, 42, [["/d"], ["/e"], ["/c"]])]


def test_persistent_watches_travel_in_set_watches2():
    m = connected(machine())
    m.watches.add(watches.PERSISTENT, "/p", object())
    m.watches.add(watches.RECURSIVE, "/r", object())
    m.watches.add(watches.DATA, "/d", object())
    m.identity.last_zxid = 7
    assert [read_set_watches(f) for f in m.set_watches_frames()] == [
        (zk.SET_WATCHES2, 7, [["/d"], [], [], ["/p"], ["/r"]])]


def test_set_watches_batches_split_past_128_kib():
    m = connected(machine())
    paths = ["/%s-%05d" % ("n" * 90, i) for i in range(4000)]  # ~400 KB
    for path in paths:
        m.watches.add(watches.CHILD, path, object())
    m.identity.last_zxid = 3
    frames = m.set_watches_frames()
    assert len(frames) >= 3
    restored = []
    for frame in frames:
        opcode, zxid, (data, exist, child) = read_set_watches(frame)
        assert (opcode, zxid, data, exist) == (zk.SET_WATCHES, 3, [], [])
        assert len(frame) <= 128 * 1024 + 64
        restored.extend(child)
    assert sorted(restored) == sorted(paths)


def test_no_watches_no_set_watches():
    assert connected(machine()).set_watches_frames() == []


# -- deadlines ---------------------------------------------------------------------

def test_ping_due_after_a_third_of_the_read_timeout():
    m = connected(machine(), now=100.0, timeout_ms=9000)  # read timeout 6 s
    assert m.tick(101.0) is None
    assert m.tick(102.0) == codec.encode_ping()
    m.last_send = 102.0
    assert m.next_deadline() == pytest.approx(104.0)


def test_silence_for_the_read_timeout_breaks_the_connection():
    m = connected(machine(), now=100.0, timeout_ms=9000)
    m.last_send = 105.9
    assert m.tick(105.9) is None
    with pytest.raises(ConnectionBroken) as info:
        m.tick(106.1)
    assert isinstance(info.value.args[0], ConnectionDropped)


def test_a_frame_moves_the_read_deadline():
    m = connected(machine(), now=100.0, timeout_ms=9000)
    m.receive(header(zk.PING_XID), 105.0)
    m.last_send = 108.0
    assert m.tick(108.0) is None
    assert m.next_deadline() == pytest.approx(110.0)


def test_expiry_deadline_is_a_session_timeout_after_the_server_spoke():
    m = machine()
    assert m.expiry_deadline() is None
    connected(m, now=100.0, timeout_ms=9000)
    m.receive(header(zk.PING_XID), 103.0)
    assert m.expiry_deadline() == pytest.approx(112.0)
