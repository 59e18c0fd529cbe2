"""The session machine's SASL exchange, driven with recorded frames.

The DIGEST-MD5 exchange here was recorded from ZooKeeper 3.8.0's server
(JAAS user alice="alice-secret") with a fixed client nonce, so the
server's ``rspauth`` checks the client's response.  No server runs.
"""

import struct
from types import SimpleNamespace

import pytest
from kazoo.exceptions import (
    AuthFailedError,
    NoNodeError,
    SessionClosedRequireSaslError,
)

from _sessionlib import Result, connect_response, header
from fastzk._core import codec
from fastzk.errors import ProtocolError
from fastzk.protocol import constants as zk
from fastzk.protocol import opening as opening_module
from fastzk.protocol.sasl import DigestMD5, normalize_sasl_options
from fastzk.protocol.session import (
    R_STAT,
    ConnectionBroken,
    Request,
    SessionMachine,
)

CNONCE = b"fastzk-test-cnonce"
CHALLENGE = (b'realm="zk-sasl-md5",nonce="OsspPNRFQ7xGgkdvEpg8QRm+otnc8Ronig36m/5h",'
             b"charset=utf-8,algorithm=md5-sess")
RSPAUTH = b"rspauth=f460c22053d03bea1f6a6c028f58130a"
ALICE = {"mechanism": "DIGEST-MD5", "username": "alice",
         "password": "alice-secret"}


def sasl_reply(xid, token, err=0, zxid=0):
    body = struct.pack(">i", -1) if token is None else struct.pack(">i", len(token)) + token
    return struct.pack(">iqi", xid, zxid, err) + body


def sent_request(frame):
    """``(xid, opcode, token)`` of a SASL request frame."""
    length, xid, opcode, size = struct.unpack_from(">iiii", frame)
    assert length == len(frame) - 4
    token = frame[16:]
    assert len(token) == size
    return xid, opcode, token


@pytest.fixture
def identity():
    return SimpleNamespace(last_zxid=0, _session_id=None, _session_passwd=b"\0" * 16,
                           _protocol_version=0)


@pytest.fixture
def machine(identity, monkeypatch):
    """A connected machine with alice's options, whose DIGEST-MD5 uses the
    recorded client nonce."""

    def recorded_mechanism(options, host):
        return DigestMD5(options["username"], options["password"], cnonce=CNONCE)

    monkeypatch.setattr(opening_module, "mechanism_for", recorded_mechanism)
    m = SessionMachine(identity, 10000)
    m.sasl_options = normalize_sasl_options(ALICE)
    m.connect_request()
    m.receive_connect_response(connect_response(timeout_ms=10000), 0.0)
    return m


def run_recorded_exchange(machine):
    first = machine.start_sasl("127.0.0.1")
    assert sent_request(first) == (1, zk.SASL, b"")
    response = machine.receive_sasl_reply(sasl_reply(1, CHALLENGE), 1.0)
    xid, opcode, token = sent_request(response)
    assert (xid, opcode) == (2, zk.SASL)
    assert b'username="alice"' in token and b'cnonce="fastzk-test-cnonce"' in token
    assert machine.sasl_pending
    assert machine.receive_sasl_reply(sasl_reply(2, RSPAUTH, zxid=0), 2.0) is None


def test_no_sasl_options_no_exchange(identity):
    m = SessionMachine(identity, 10000)
    assert m.start_sasl("127.0.0.1") is None
    assert not m.sasl_pending


def test_recorded_digest_exchange_completes(machine):
    run_recorded_exchange(machine)
    assert not machine.sasl_pending
    assert machine.last_recv == 2.0


def test_requests_after_sasl_continue_the_xids(machine):
    run_recorded_exchange(machine)
    req = Request(zk.EXISTS, lambda xid: codec.encode_path_watch(xid, zk.EXISTS, "/a", False),
                  R_STAT, Result(), "/a")
    machine.encode(req)
    assert req.xid == 3


def test_every_connection_runs_a_fresh_exchange(machine):
    run_recorded_exchange(machine)
    machine.connection_lost()
    machine.connect_request()
    machine.receive_connect_response(connect_response(timeout_ms=10000), 5.0)
    run_recorded_exchange(machine)


def test_wrong_rspauth_fails_naming_mechanism_and_user(machine):
    machine.start_sasl("127.0.0.1")
    machine.receive_sasl_reply(sasl_reply(1, CHALLENGE), 1.0)
    with pytest.raises(AuthFailedError) as info:
        machine.receive_sasl_reply(sasl_reply(2, b"rspauth=" + b"0" * 32), 2.0)
    message = str(info.value)
    assert "SASL DIGEST-MD5 authentication failed" in message
    assert "'alice'" in message
    assert not machine.sasl_pending


@pytest.mark.parametrize("err, exc_type, words", [
    (zk.AUTH_FAILED, AuthFailedError, "server refused"),
    (zk.SESSION_CLOSED_REQUIRE_SASL_AUTH, SessionClosedRequireSaslError,
     "requires SASL"),
])
def test_refusal_reply_raises_kazoo_error(machine, err, exc_type, words):
    machine.start_sasl("127.0.0.1")
    machine.receive_sasl_reply(sasl_reply(1, CHALLENGE), 1.0)
    with pytest.raises(exc_type) as info:
        machine.receive_sasl_reply(header(2, err=err), 2.0)
    assert words in str(info.value) and "'alice'" in str(info.value)
    assert not machine.sasl_pending


def test_empty_challenge_of_a_server_without_sasl(machine):
    # A server without a JAAS Server section answers with a null token.
    machine.start_sasl("127.0.0.1")
    with pytest.raises(AuthFailedError, match="empty challenge"):
        machine.receive_sasl_reply(sasl_reply(1, None), 1.0)


def test_reply_for_another_xid_is_a_protocol_error(machine):
    machine.start_sasl("127.0.0.1")
    with pytest.raises(ProtocolError):
        machine.receive_sasl_reply(sasl_reply(7, CHALLENGE), 1.0)
    assert not machine.sasl_pending


def test_reply_without_exchange_is_a_protocol_error(machine):
    with pytest.raises(ProtocolError):
        machine.receive_sasl_reply(sasl_reply(1, CHALLENGE), 1.0)


def test_sasl_reply_zxid_moves_last_zxid(machine, identity):
    machine.start_sasl("127.0.0.1")
    machine.receive_sasl_reply(sasl_reply(1, CHALLENGE, zxid=42), 1.0)
    assert identity.last_zxid == 42


def test_mechanism_that_cannot_start_is_an_auth_failure(identity, monkeypatch):
    from kazoo.exceptions import ConfigurationError

    def no_mechanism(options, host):
        raise ConfigurationError("GSSAPI needs the 'gssapi' package")

    monkeypatch.setattr(opening_module, "mechanism_for", no_mechanism)
    m = SessionMachine(identity, 10000)
    m.sasl_options = {"mechanism": "GSSAPI"}
    with pytest.raises(AuthFailedError, match="SASL GSSAPI authentication failed"):
        m.start_sasl("zk.example")


@pytest.mark.parametrize("xid", [zk.PING_XID, zk.SET_WATCHES_XID, 1])
def test_require_sasl_reply_breaks_the_connection(identity, xid):
    # A server with sessionRequireClientSASLAuth answers any request of a
    # session without SASL with -124, then closes the connection.
    m = SessionMachine(identity, 10000)
    m.connect_request()
    m.receive_connect_response(connect_response(timeout_ms=10000), 0.0)
    result = Result()
    req = Request(zk.EXISTS, lambda x: codec.encode_path_watch(x, zk.EXISTS, "/a", False),
                  R_STAT, result, "/a")
    m.encode(req)
    m.pending.append(req)
    with pytest.raises(ConnectionBroken) as info:
        m.receive(header(xid, err=zk.SESSION_CLOSED_REQUIRE_SASL_AUTH), 1.0)
    error = info.value.args[0]
    assert isinstance(error, SessionClosedRequireSaslError)
    assert "no sasl_options" in str(error)
    if xid == 1:
        assert result.calls == [("error", error)]
        assert not m.pending
    else:
        assert result.calls == []


def test_other_errors_are_not_require_sasl(identity):
    m = SessionMachine(identity, 10000)
    m.connect_request()
    m.receive_connect_response(connect_response(timeout_ms=10000), 0.0)
    result = Result()
    req = Request(zk.GET_DATA, lambda x: codec.encode_path_watch(x, zk.GET_DATA, "/a", False),
                  R_STAT, result, "/a")
    m.encode(req)
    m.pending.append(req)
    m.receive(header(1, err=NoNodeError.code), 1.0)
    assert isinstance(result.calls[0][1], NoNodeError)
