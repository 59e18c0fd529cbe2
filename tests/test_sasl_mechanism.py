"""Tests of fastzk.protocol.sasl: the SASL mechanisms and the exchange.

DIGEST-MD5's reference is RFC 2831's worked example (section 4) and
exchanges recorded from ZooKeeper 3.8's DIGEST-MD5 server with a fixed
client nonce: the server's ``rspauth`` in them proves that it computed the
same secret as the client, so replaying them checks the hashing rules
(ISO 8859-1 and UTF-8 credentials) against Java's implementation.  The
last tests run the exchange against a real server.
"""

import hashlib
import socket
import struct
import sys
import warnings

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    AuthFailedError,
    ConfigurationError,
    SessionClosedRequireSaslError,
)
from kazoo.protocol.serialization import SASL as KazooSASL
from kazoo.protocol.serialization import int_struct

from fastzk.errors import ProtocolError
from fastzk.protocol import constants
from fastzk.protocol.sasl import (
    DIGEST_MD5_HOST,
    DigestMD5,
    Gssapi,
    SaslExchange,
    decode_sasl_reply,
    encode_sasl_request,
    mechanism_for,
    normalize_sasl_options,
    parse_digest_challenge,
    sasl_options_from_auth_data,
)

RFC_CHALLENGE = (
    b'realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",qop="auth",'
    b"algorithm=md5-sess,charset=utf-8"
)
RFC_RESPONSE = (
    b'charset=utf-8,username="chris",realm="elwood.innosoft.com",'
    b'nonce="OA6MG9tEQGm2hh",nc=00000001,cnonce="OA6MHXh6VqTrRk",'
    b'digest-uri="imap/elwood.innosoft.com",'
    b"response=d388dad90d4bbd760a152321f2143af7,qop=auth"
)
RFC_RSPAUTH = b"rspauth=ea40f60335c427b5527b84dbabcdfffd"

RECORDED_CNONCE = b"fastzk-test-cnonce"
# (username, password, challenge, rspauth) from ZooKeeper 3.8.0's server,
# JAAS users alice="alice-secret", bob="béb-päss", zed="ŝtar-€".
RECORDED = [
    ("alice", "alice-secret",
     b'realm="zk-sasl-md5",nonce="OsspPNRFQ7xGgkdvEpg8QRm+otnc8Ronig36m/5h",'
     b"charset=utf-8,algorithm=md5-sess",
     b"rspauth=f460c22053d03bea1f6a6c028f58130a"),
    ("bob", "b\u00e9b-p\u00e4ss",
     b'realm="zk-sasl-md5",nonce="R5JF2SNZRbzSCFbbI8RNTfIesmhmuA76zVROVmMd",'
     b"charset=utf-8,algorithm=md5-sess",
     b"rspauth=f5b3c8e5d70a8e3dcc1a5d0c14eb52e7"),
    ("zed", "\u015dtar-\u20ac",
     b'realm="zk-sasl-md5",nonce="pf/36ogpWkYGTRy35EUtpcmd6PsiMRh6z/uZ3X7p",'
     b"charset=utf-8,algorithm=md5-sess",
     b"rspauth=1a2449f78c38e69f4d2c60f7e7c9f72c"),
]
ZK_CHALLENGE = RECORDED[0][2]


def reply(xid, token, err=0, zxid=0):
    """A reply frame body: ReplyHeader and SetSASLResponse."""
    body = struct.pack(">iqi", xid, zxid, err)
    if token is None:
        return body + struct.pack(">i", -1)
    return body + struct.pack(">i", len(token)) + token


def rfc_response(username, realm, password, nonce, cnonce, digest_uri,
                 authzid=None, a2_prefix=b"AUTHENTICATE:"):
    """RFC 2831 2.1.2.1's response-value, written out independently."""
    a1 = hashlib.md5(b"%s:%s:%s" % (username, realm, password)).digest()
    a1 += b":" + nonce + b":" + cnonce
    if authzid:
        a1 += b":" + authzid
    ha1 = hashlib.md5(a1).hexdigest().encode()
    ha2 = hashlib.md5(a2_prefix + digest_uri).hexdigest().encode()
    kd = b":".join((ha1, nonce, b"00000001", cnonce, b"auth", ha2))
    return hashlib.md5(kd).hexdigest().encode()


def rfc_mechanism(**kw):
    return DigestMD5("chris", "secret", host="elwood.innosoft.com",
                     service="imap", cnonce=b"OA6MHXh6VqTrRk", **kw)


# -- DIGEST-MD5 -----------------------------------------------------------------


def test_rfc2831_example_response():
    mech = rfc_mechanism()
    assert mech.initial_response() == b""
    assert mech.respond(RFC_CHALLENGE) == RFC_RESPONSE
    assert not mech.complete


def test_rfc2831_example_rspauth_completes():
    mech = rfc_mechanism()
    mech.respond(RFC_CHALLENGE)
    assert mech.respond(RFC_RSPAUTH) == b""
    assert mech.complete


def test_wrong_rspauth_fails():
    mech = rfc_mechanism()
    mech.respond(RFC_CHALLENGE)
    with pytest.raises(AuthFailedError, match="rspauth is wrong"):
        mech.respond(b"rspauth=ea40f60335c427b5527b84dbabcdfffe")
    assert not mech.complete


def test_final_message_without_rspauth_fails():
    mech = rfc_mechanism()
    mech.respond(RFC_CHALLENGE)
    with pytest.raises(AuthFailedError, match="no rspauth"):
        mech.respond(b"")


def test_challenge_after_completion_fails():
    mech = rfc_mechanism()
    mech.respond(RFC_CHALLENGE)
    mech.respond(RFC_RSPAUTH)
    with pytest.raises(AuthFailedError, match="after the authentication completed"):
        mech.respond(RFC_CHALLENGE)


@pytest.mark.parametrize("username,password,challenge,rspauth", RECORDED,
                         ids=["ascii", "iso-8859-1", "utf-8"])
def test_recorded_zookeeper_exchange(username, password, challenge, rspauth):
    mech = DigestMD5(username, password, cnonce=RECORDED_CNONCE)
    response = parse_digest_challenge(mech.respond(challenge))
    assert response["digest-uri"] == [b"zookeeper/zk-sasl-md5"]
    assert response["username"] == [username.encode("utf-8")]
    mech.respond(rspauth)
    assert mech.complete


def test_realm_absent_hashes_an_empty_realm():
    mech = DigestMD5("u", "p", cnonce=b"c")
    out = parse_digest_challenge(mech.respond(b'nonce="n",algorithm=md5-sess'))
    assert "realm" not in out
    assert "charset" not in out
    assert out["response"] == [
        rfc_response(b"u", b"", b"p", b"n", b"c", b"zookeeper/zk-sasl-md5")]


def test_first_of_several_realms_is_used():
    mech = DigestMD5("u", "p", cnonce=b"c")
    out = parse_digest_challenge(mech.respond(
        b'realm="one",realm="two",nonce="n",algorithm=md5-sess'))
    assert out["realm"] == [b"one"]
    assert out["response"] == [
        rfc_response(b"u", b"one", b"p", b"n", b"c", b"zookeeper/zk-sasl-md5")]


def test_authzid_is_sent_and_hashed():
    mech = DigestMD5("u", "p", authzid="admin", cnonce=b"c")
    out = parse_digest_challenge(mech.respond(b'realm="r",nonce="n",algorithm=md5-sess'))
    assert out["authzid"] == [b"admin"]
    assert out["response"] == [rfc_response(
        b"u", b"r", b"p", b"n", b"c", b"zookeeper/zk-sasl-md5", authzid=b"admin")]


def test_quoted_values_are_escaped_in_the_response():
    mech = DigestMD5('a"b\\c', "p", cnonce=b"c")
    raw = mech.respond(b'nonce="n\\"x",algorithm=md5-sess')
    assert b'username="a\\"b\\\\c"' in raw
    assert b'nonce="n\\"x"' in raw
    assert parse_digest_challenge(raw)["username"] == [b'a"b\\c']


def test_without_utf8_charset_a_non_latin1_name_fails():
    mech = DigestMD5("\u015d", "p", cnonce=b"c")
    with pytest.raises(AuthFailedError, match="ISO 8859-1"):
        mech.respond(b'nonce="n",algorithm=md5-sess')


def test_random_cnonce_differs_between_mechanisms():
    responses = [parse_digest_challenge(DigestMD5("u", "p").respond(ZK_CHALLENGE))
                 for _ in range(2)]
    cnonces = [r["cnonce"][0] for r in responses]
    assert cnonces[0] != cnonces[1]
    assert len(cnonces[0]) == 32


@pytest.mark.parametrize("challenge,message", [
    (b"", "empty challenge"),
    (b'realm="r",algorithm=md5-sess', "no nonce"),
    (b'nonce="a",nonce="b",algorithm=md5-sess', "2 nonce directives"),
    (b'nonce="n"', "algorithm=md5-sess"),
    (b'nonce="n",algorithm=md5', "algorithm=md5-sess"),
    (b'nonce="n",algorithm=md5-sess,qop="auth-int,auth-conf"', "security layer"),
    (b'nonce="n",algorithm=md5-sess,charset=latin-1', "unknown charset"),
    (b'nonce="n",algorithm=md5-sess,rspauth=00', "rspauth before"),
    (b'nonce="n",algorithm=md5-sess,stale=true,stale=false', "2 stale directives"),
    (b'nonce="n' + b'x' * 2048 + b'",algorithm=md5-sess', "longer than 2048"),
])
def test_bad_challenge_fails(challenge, message):
    with pytest.raises(AuthFailedError, match=message):
        DigestMD5("u", "p").respond(challenge)


def test_stale_challenge_is_answered():
    out = parse_digest_challenge(DigestMD5("u", "p", cnonce=b"c").respond(
        b'realm="r",nonce="fresh",stale=true,algorithm=md5-sess'))
    assert out["nonce"] == [b"fresh"]
    assert "stale" not in out


def test_qop_list_with_auth_is_accepted():
    out = parse_digest_challenge(DigestMD5("u", "p").respond(
        b'nonce="n",qop="auth-conf, auth-int, auth",algorithm=md5-sess'))
    assert out["qop"] == [b"auth"]


# -- challenge parsing ------------------------------------------------------------


def test_parse_quoted_strings_with_escapes():
    parsed = parse_digest_challenge(b'realm="a\\"b\\\\c\\d",nonce="x,y=z"')
    assert parsed == {"realm": [b'a"b\\cd'], "nonce": [b"x,y=z"]}


def test_parse_multiple_realms_in_order():
    parsed = parse_digest_challenge(b'realm="r1",nonce="n",realm="r2",realm=r3')
    assert parsed["realm"] == [b"r1", b"r2", b"r3"]


def test_parse_white_space_empty_elements_and_case():
    parsed = parse_digest_challenge(
        b' ,, Realm = "r" ,\r\n\tNONCE=abc , ,algorithm=md5-sess,')
    assert parsed == {"realm": [b"r"], "nonce": [b"abc"], "algorithm": [b"md5-sess"]}


def test_parse_empty_quoted_value():
    assert parse_digest_challenge(b'realm=""') == {"realm": [b""]}


@pytest.mark.parametrize("challenge,message", [
    (b'realm="unterminated', "unterminated"),
    (b'realm="ends in escape\\', "unterminated"),
    (b"realm", "has no value"),
    (b'="x"', "directive name was expected"),
    (b'realm="a" nonce="b"', "unexpected"),
    (b"realm=a b", "unexpected"),
])
def test_parse_malformed(challenge, message):
    with pytest.raises(AuthFailedError, match=message):
        parse_digest_challenge(challenge)


# -- GSSAPI -----------------------------------------------------------------------


class _Wrapped(object):
    def __init__(self, message):
        self.message = message


class FakeSecurityContext(object):
    """A stand-in for gssapi.SecurityContext: two context tokens, then
    wrap/unwrap as identity with a marker."""

    initiator_name = "client@EXAMPLE.COM"

    def __init__(self, offer=b"\x07\x00\x10\x00"):
        self.complete = False
        self.steps = []
        self.offer = offer
        self.wrapped = None

    def step(self, token):
        self.steps.append(token)
        if token is None:
            return b"AP-REQ"
        self.complete = True
        return None

    def unwrap(self, message):
        assert message == b"wrapped-offer"
        return _Wrapped(self.offer)

    def wrap(self, message, encrypt):
        assert encrypt is False
        self.wrapped = message
        return _Wrapped(b"wrapped:" + message)


def test_gssapi_negotiates_no_security_layer():
    ctx = FakeSecurityContext()
    mech = Gssapi(context=ctx)
    assert mech.initial_response() == b"AP-REQ"
    assert mech.respond(b"AP-REP") == b""
    assert not mech.complete
    assert mech.respond(b"wrapped-offer") == b"wrapped:\x01\x00\x00\x00client@EXAMPLE.COM"
    assert mech.complete
    assert ctx.steps == [None, b"AP-REP"]


def test_gssapi_authzid_replaces_the_principal():
    mech = Gssapi(context=FakeSecurityContext(), authzid="zk-admin")
    mech.initial_response()
    mech.respond(b"AP-REP")
    assert mech.respond(b"wrapped-offer").endswith(b"\x01\x00\x00\x00zk-admin")


@pytest.mark.parametrize("offer,message", [
    (b"\x06\x00\x10\x00", "requires a security layer"),
    (b"\x01\x00", "2 bytes, not 4"),
])
def test_gssapi_bad_offer_fails(offer, message):
    mech = Gssapi(context=FakeSecurityContext(offer))
    mech.initial_response()
    mech.respond(b"AP-REP")
    with pytest.raises(AuthFailedError, match=message):
        mech.respond(b"wrapped-offer")


def test_gssapi_exchange_reads_the_reply_to_its_last_token():
    exchange = SaslExchange(Gssapi(context=FakeSecurityContext()))
    assert exchange.first_request() == encode_sasl_request(1, b"AP-REQ")
    assert exchange.receive(reply(1, b"AP-REP")) == encode_sasl_request(2, b"")
    last = exchange.receive(reply(2, b"wrapped-offer"))
    assert last == encode_sasl_request(3, b"wrapped:\x01\x00\x00\x00client@EXAMPLE.COM")
    assert not exchange.done
    assert exchange.receive(reply(3, None)) is None
    assert exchange.done


# -- sasl_options -----------------------------------------------------------------


def test_digest_options_use_zookeepers_fixed_host():
    mech = mechanism_for({"mechanism": "DIGEST-MD5", "username": "u",
                          "password": "p"}, "zk1.example.com")
    assert isinstance(mech, DigestMD5)
    assert mech.digest_uri == "zookeeper/" + DIGEST_MD5_HOST


def test_digest_options_service_and_authorization_id():
    mech = mechanism_for({"mechanism": "digest-md5", "username": "u", "password": "p",
                          "service": "zk", "authorization_id": "boss"}, "h")
    assert mech.digest_uri == "zk/zk-sasl-md5"
    assert mech.authzid == "boss"


def test_digest_options_callback_supplies_credentials():
    asked = []

    def callback(name):
        asked.append(name)
        return {"username": "cb-user", "password": "cb-pass"}[name]

    options = normalize_sasl_options({"mechanism": "DIGEST-MD5", "callback": callback})
    assert (options["username"], options["password"]) == ("cb-user", "cb-pass")
    assert asked == ["username", "password"]
    assert options["service"] == "zookeeper"


@pytest.mark.parametrize("options,message", [
    ({"username": "u", "password": "p"}, "needs a 'mechanism'"),
    ({"mechanism": "PLAIN", "username": "u"}, "unknown SASL mechanism 'PLAIN'"),
    ({"mechanism": "DIGEST-MD5", "username": "u"}, "need a 'password'"),
    ({"mechanism": "DIGEST-MD5", "password": "p"}, "need a 'username'"),
    ({"mechanism": "DIGEST-MD5", "username": "u", "password": 5}, "must be a str"),
    ({"mechanism": "DIGEST-MD5", "username": "u", "password": "p", "pasword": "p"},
     "unknown sasl_options key.*pasword"),
    ({"mechanism": "DIGEST-MD5", "username": "u", "password": "p", "host": "h"},
     "unknown sasl_options key.*host"),
    ({"mechanism": "DIGEST-MD5", "username": "u", "password": "p",
      "qops": ["auth-conf"]}, "must include 'auth'"),
    ("DIGEST-MD5", "must be a dict"),
])
def test_bad_options_raise_configuration_error(options, message):
    with pytest.raises(ConfigurationError, match=message):
        mechanism_for(options, "h")


def test_gssapi_without_its_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gssapi", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'fastzk\[gssapi\]'"):
        mechanism_for({"mechanism": "GSSAPI", "principal": "me@EXAMPLE.COM"}, "h")


def test_auth_data_sasl_entry_converts_as_kazoo_does():
    auth_data = [("digest", "d:pw"), ("sasl", "alice:alice-secret")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        kazoo = KazooClient(auth_data=list(auth_data))
    with pytest.warns(DeprecationWarning, match="sasl_options"):
        options, others = sasl_options_from_auth_data(auth_data)
    assert options == kazoo._connection.sasl_options
    assert set(others) == kazoo.auth_data == {("digest", "d:pw")}
    assert isinstance(mechanism_for(options, "h"), DigestMD5)


def test_auth_data_password_may_hold_colons():
    with pytest.warns(DeprecationWarning):
        options, _ = sasl_options_from_auth_data([("sasl", "u:a:b")])
    assert (options["username"], options["password"]) == ("u", "a:b")


def test_auth_data_without_sasl_leaves_options_alone():
    options = {"mechanism": "DIGEST-MD5", "username": "u", "password": "p"}
    assert sasl_options_from_auth_data([("digest", "x:y")], options) == (
        options, [("digest", "x:y")])
    assert sasl_options_from_auth_data(None) == (None, [])


@pytest.mark.parametrize("auth_data,sasl_options,message", [
    ([("sasl", "a:b")], {"mechanism": "DIGEST-MD5"}, "Multiple SASL configurations"),
    ([("sasl", "a:b"), ("sasl", "c:d")], None, "Multiple SASL configurations"),
    ([("sasl", "no-colon")], None, "'user:password'"),
])
def test_auth_data_conflicts(auth_data, sasl_options, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ConfigurationError, match=message):
            sasl_options_from_auth_data(auth_data, sasl_options)


def test_kazoo_raises_the_same_conflict_error():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ConfigurationError, match="Multiple SASL configurations"):
            KazooClient(auth_data=[("sasl", "a:b")], sasl_options={"mechanism": "x"})


# -- frames -----------------------------------------------------------------------


@pytest.mark.parametrize("token", [b"", b"charset=utf-8,username=\"u\"", bytes(range(256))])
def test_request_frame_matches_kazoo(token):
    body = int_struct.pack(7) + int_struct.pack(KazooSASL.type) + KazooSASL(token).serialize()
    assert encode_sasl_request(7, token) == int_struct.pack(len(body)) + bytes(body)


def test_sasl_opcode_is_zookeepers():
    assert constants.SASL == KazooSASL.type == 102


def test_decode_reply_with_token():
    assert decode_sasl_reply(reply(3, b"tok", zxid=9)) == (3, 9, 0, b"tok")


def test_decode_reply_null_token_and_bare_error():
    assert decode_sasl_reply(reply(2, None, err=-115)) == (2, 0, -115, None)
    assert decode_sasl_reply(struct.pack(">iqi", 2, 0, -115)) == (2, 0, -115, None)
    assert decode_sasl_reply(reply(1, None)) == (1, 0, 0, None)


@pytest.mark.parametrize("frame,message", [
    (b"\x00" * 15, "truncated SASL reply: 15 bytes"),
    (struct.pack(">iqi", 1, 0, 0), "no SetSASLResponse token"),
    (struct.pack(">iqii", 1, 0, 0, 5) + b"abc", "5 bytes announced, 3 present"),
    (struct.pack(">iqii", 1, 0, 0, -2), "negative SASL token length"),
    (reply(1, b"ab") + b"!", "1 stray bytes"),
])
def test_decode_malformed_reply(frame, message):
    with pytest.raises(ProtocolError, match=message):
        decode_sasl_reply(frame)


def test_request_rejects_an_out_of_range_xid():
    with pytest.raises(ValueError, match="32-bit"):
        encode_sasl_request(2 ** 31, b"")


# -- SaslExchange -----------------------------------------------------------------


def digest_exchange(username="alice", password="alice-secret", **kw):
    return SaslExchange(DigestMD5(username, password, cnonce=RECORDED_CNONCE), **kw)


def test_exchange_replays_a_recorded_success():
    username, password, challenge, rspauth = RECORDED[0]
    exchange = digest_exchange(username, password)
    assert exchange.first_request() == encode_sasl_request(1, b"")
    second = exchange.receive(reply(1, challenge))
    (length, xid, opcode), token = struct.unpack_from(">iii", second), second[16:]
    assert (length, xid, opcode) == (len(second) - 4, 2, 102)
    assert parse_digest_challenge(token)["username"] == [b"alice"]
    assert not exchange.done
    assert exchange.receive(reply(2, rspauth)) is None
    assert exchange.done


def test_exchange_auth_failed_reply():
    exchange = digest_exchange(password="wrong")
    exchange.first_request()
    exchange.receive(reply(1, ZK_CHALLENGE))
    with pytest.raises(AuthFailedError, match="DIGEST-MD5 authentication failed"):
        exchange.receive(reply(2, None, err=constants.AUTH_FAILED))
    assert not exchange.done


def test_exchange_sasl_required_reply():
    exchange = digest_exchange()
    exchange.first_request()
    with pytest.raises(SessionClosedRequireSaslError, match="requires SASL"):
        exchange.receive(reply(1, None, err=constants.SESSION_CLOSED_REQUIRE_SASL_AUTH))


def test_exchange_other_error_codes_are_kazoos():
    exchange = digest_exchange()
    exchange.first_request()
    with pytest.raises(AuthFailedError, match="error code -9999"):
        exchange.receive(reply(1, None, err=-9999))


def test_exchange_wrong_rspauth_in_reply():
    exchange = digest_exchange()
    exchange.first_request()
    exchange.receive(reply(1, RECORDED[0][2]))
    with pytest.raises(AuthFailedError, match="rspauth is wrong"):
        exchange.receive(reply(2, RECORDED[1][3]))
    assert not exchange.done


def test_exchange_server_without_sasl():
    # A server without a JAAS Server section answers OK with a null token.
    exchange = digest_exchange()
    exchange.first_request()
    with pytest.raises(AuthFailedError, match="empty challenge"):
        exchange.receive(reply(1, None))


def test_exchange_reply_for_another_xid():
    exchange = digest_exchange()
    exchange.first_request()
    with pytest.raises(ProtocolError, match="xid 5, expected 1"):
        exchange.receive(reply(5, ZK_CHALLENGE))


def test_exchange_custom_xids_and_zxid():
    xids = iter([40, 41])
    exchange = digest_exchange(next_xid=lambda: next(xids))
    assert struct.unpack_from(">ii", exchange.first_request(), 4) == (40, 102)
    frame = exchange.receive(reply(40, ZK_CHALLENGE, zxid=12))
    assert struct.unpack_from(">ii", frame, 4) == (41, 102)
    assert exchange.zxid == 12


def test_exchange_misuse():
    exchange = digest_exchange()
    with pytest.raises(RuntimeError, match="no SASL request is outstanding"):
        exchange.receive(reply(1, ZK_CHALLENGE))
    exchange.first_request()
    with pytest.raises(RuntimeError, match="already started"):
        exchange.first_request()
    with pytest.raises(ValueError, match="positive xid"):
        SaslExchange(DigestMD5("u", "p"), next_xid=lambda: -4).first_request()


# -- against a real ZooKeeper -----------------------------------------------------


JAAS = """Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_alice="alice-secret";
};
"""


@pytest.fixture(scope="module")
def sasl_server(tmp_path_factory):
    from fastzk.testing.zkserver import DEFAULT_JVM_OPTS, ZooKeeperServer

    jaas = tmp_path_factory.mktemp("sasl") / "jaas.conf"
    jaas.write_text(JAAS)
    server = ZooKeeperServer(
        extra_config={"authProvider.1":
                      "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"},
        jvm_opts=list(DEFAULT_JVM_OPTS) + ["-Djava.security.auth.login.config=%s" % jaas],
    )
    server.start()
    yield server
    server.stop()
    server.cleanup()


def _read_frame(sock):
    def read(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        return data

    return read(struct.unpack(">i", read(4))[0])


def _authenticate(server, password):
    """Handshake, SASL, then whoAmI; return the whoAmI reply body."""
    from fastzk import _codec

    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(_codec.encode_connect(0, 10000, 0, b"\0" * 16, False))
        _read_frame(sock)
        options = {"mechanism": "DIGEST-MD5", "username": "alice", "password": password}
        exchange = SaslExchange(mechanism_for(options, server.host))
        frame = exchange.first_request()
        while frame is not None:
            sock.sendall(frame)
            frame = exchange.receive(_read_frame(sock))
        assert exchange.done
        sock.sendall(struct.pack(">iii", 8, 100, constants.WHO_AM_I))
        return _read_frame(sock)


def test_real_server_accepts_the_password(sasl_server):
    who = _authenticate(sasl_server, "alice-secret")
    assert b"\x00\x00\x00\x04sasl\x00\x00\x00\x05alice" in who


def test_real_server_refuses_a_wrong_password(sasl_server):
    with pytest.raises(AuthFailedError, match="authentication failed"):
        _authenticate(sasl_server, "wrong")
