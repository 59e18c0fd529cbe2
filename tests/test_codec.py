"""Tests of the wire codec, run against both implementations.

``fastzk._codec`` (pure Python) and ``fastzk._ccodec`` (Cython) must behave
identically.  Encoders are checked byte for byte against kazoo's
serialisers; decoders against replies built by the small jute writer below
and against kazoo's deserialisers.  Malformed input must raise
:class:`fastzk.errors.ProtocolError` and nothing else.

The compiled module is required: if it cannot be imported its tests fail,
unless ``FASTZK_NO_EXTENSIONS`` is set (then only the Python one runs).
"""

import importlib
import os
import pkgutil
import random
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kazoo.exceptions import ConnectionDropped
from kazoo.protocol import serialization as kz
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, Id, make_digest_acl

from fastzk.errors import ProtocolError
from _frames import model_frames

NO_EXTENSIONS = os.environ.get("FASTZK_NO_EXTENSIONS", "") not in ("", "0")
IMPLEMENTATIONS = ["fastzk._codec"]
if not NO_EXTENSIONS:
    IMPLEMENTATIONS.append("fastzk._ccodec")

HSETTINGS = settings(
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HSETTINGS_MORE = settings(HSETTINGS, max_examples=300)


def _load(name):
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.fail(
            "%s cannot be imported (%s): build it with `python setup.py "
            "build_ext --inplace`, or set FASTZK_NO_EXTENSIONS=1 to test "
            "the pure-Python codec only" % (name, exc),
            pytrace=False,
        )


@pytest.fixture(scope="module", params=IMPLEMENTATIONS, ids=lambda n: n.split(".")[-1])
def codec(request):
    return _load(request.param)


@pytest.fixture(scope="module")
def impls():
    """Every implementation under test (one, or both for differential tests)."""
    return [_load(name) for name in IMPLEMENTATIONS]


@pytest.fixture(scope="module")
def both():
    """Both implementations, for differential tests."""
    if NO_EXTENSIONS:
        pytest.skip("FASTZK_NO_EXTENSIONS is set: only the Python codec exists")
    return _load("fastzk._codec"), _load("fastzk._ccodec")


# -- a small jute writer ------------------------------------------------------


def j_int(v):
    return struct.pack("!i", v)


def j_long(v):
    return struct.pack("!q", v)


def j_bool(v):
    return b"\x01" if v else b"\x00"


def j_buffer(b):
    return j_int(-1) if b is None else j_int(len(b)) + bytes(b)


def j_string(s):
    return j_int(-1) if s is None else j_buffer(s.encode("utf-8"))


def j_vector(items, write):
    if items is None:
        return j_int(-1)
    return j_int(len(items)) + b"".join(write(x) for x in items)


def j_stat(stat):
    return struct.pack("!qqqqiiiqiiq", *stat)


def j_reply_header(xid=7, zxid=1234, err=0):
    return struct.pack("!iqi", xid, zxid, err)


def j_multi_header(op, done, err):
    return j_int(op) + j_bool(done) + j_int(err)


def request(xid, opcode, body):
    """A whole request frame: length, header, body."""
    body = bytes(body)
    return struct.pack("!iii", len(body) + 8, xid, opcode) + body


def length_prefixed(body):
    body = bytes(body)
    return j_int(len(body)) + body


# -- strategies ---------------------------------------------------------------

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
# Non-empty: kazoo sends "" as a null string (see test_empty_string_is_not_null).
PATHS = st.text(min_size=1, max_size=60) | st.sampled_from(
    ["/", "/a", "/zookeeper/quota", "/ünï/cødé/\u4e2d\u6587", "/emoji/\U0001f600"]
)
TEXT = st.text(max_size=40)
# Made once: hypothesis wants no use of `random` inside its strategies.
LARGE = st.sampled_from([random.Random(n).randbytes(n)
                         for n in (65536, 300000, 1 << 20)])
DATA = st.none() | st.binary(max_size=300) | LARGE
STATS = st.tuples(
    INT64, INT64, INT64, INT64, INT32, INT32, INT32, INT64, INT32, INT32, INT64
)
ACLS = st.lists(
    st.builds(
        lambda perms, scheme, ident: ACL(perms, Id(scheme, ident)),
        INT32,
        st.text(min_size=1, max_size=20),
        st.text(min_size=1, max_size=40),
    ),
    max_size=4,
)
XIDS = INT32
WATCH_OPS = [
    ("EXISTS", kz.Exists),
    ("GET_DATA", kz.GetData),
    ("GET_CHILDREN", kz.GetChildren),
    ("GET_CHILDREN2", kz.GetChildren2),
]


# -- module surface -----------------------------------------------------------

OPCODES = dict(
    CREATE=1, DELETE=2, EXISTS=3, GET_DATA=4, SET_DATA=5, GET_ACL=6,
    SET_ACL=7, GET_CHILDREN=8, SYNC=9, PING=11, GET_CHILDREN2=12, CHECK=13,
    MULTI=14, CREATE2=15, RECONFIG=16, CHECK_WATCHES=17, REMOVE_WATCHES=18,
    AUTH=100, SET_WATCHES=101, SET_WATCHES2=105, ADD_WATCH=106, CLOSE=-11,
)
XID_CONSTANTS = dict(WATCH_XID=-1, PING_XID=-2, AUTH_XID=-4, SET_WATCHES_XID=-8)


def test_constants(codec):
    for name, value in dict(OPCODES, **XID_CONSTANTS).items():
        assert getattr(codec, name) == value, name
    assert codec.DEFAULT_MAX_FRAME == 0xFFFFF + 1024
    expected = "python" if codec.__name__ == "fastzk._codec" else "cython"
    assert codec.IMPLEMENTATION == expected


def _public_names(module):
    """Names ``module`` defines for others: not private, not a module,
    not imported from elsewhere.  A package's names defined in one of its
    parts (the submodules of ``fastzk._codec``) count as its own."""
    name = module.__name__
    return {key for key, value in vars(module).items()
            if not key.startswith("_")
            and not isinstance(value, types.ModuleType)
            and _owned(getattr(value, "__module__", name), name)}


def _owned(owner, name):
    return owner == name or owner.startswith(name + ".")


def _parts(module):
    """The submodules of a package, none for a plain or compiled module."""
    path = getattr(module, "__path__", None)
    if path is None:
        return []
    return [importlib.import_module(info.name)
            for info in pkgutil.iter_modules(path, module.__name__ + ".")]


def test_public_names_are_all(codec):
    """A codec defines the names of its __all__ and no other public one,
    nor does any part of it: what a part makes public, the codec exports
    (the very object)."""
    assert _public_names(codec) == set(codec.__all__)
    for part in _parts(codec):
        public = _public_names(part)
        assert public - set(codec.__all__) == set(), part.__name__
        for name in public:
            assert getattr(part, name) is getattr(codec, name), name


def test_same_public_names(both):
    """Both implementations have the same __all__, and the same public
    FrameReader attributes."""
    py, cy = both
    assert py.__all__ == cy.__all__
    assert ({n for n in dir(py.FrameReader) if not n.startswith("_")}
            == {n for n in dir(cy.FrameReader) if not n.startswith("_")})
    for name in py.__all__:
        py_value, cy_value = getattr(py, name), getattr(cy, name)
        if callable(py_value):
            assert py_value.__doc__ and cy_value.__doc__, name
        elif name != "IMPLEMENTATION":
            assert py_value == cy_value, name
    for name in ("feed", "next_frame", "read_from", "block_reads", "buffered"):
        assert getattr(py.FrameReader, name).__doc__, name
        assert getattr(cy.FrameReader, name).__doc__, name


def _pxd_enum(path):
    """The ``NAME = value`` members of the enum in a .pxd file."""
    values = {}
    with open(path) as f:
        for line in f:
            match = re.match(r"^    ([A-Z][A-Z0-9_]*) = ([-+*() 0-9a-fA-Fx]+)$", line)
            if match:
                values[match.group(1)] = eval(match.group(2), {"__builtins__": {}})
    return values


def test_pxd_declares_the_python_constants():
    """constants.pxd (the compiled codec's view) and constants.py (the
    Python one) hold the same names with the same values."""
    from fastzk.protocol import constants

    python = {name: value for name, value in vars(constants).items()
              if name.isupper()}
    pxd = os.path.join(os.path.dirname(constants.__file__), "constants.pxd")
    assert _pxd_enum(pxd) == python
    assert {"CREATE", "WATCH_XID", "NO_NODE", "EVENT_NODE_CREATED",
            "STATE_EXPIRED", "CREATE_EPHEMERAL", "MAX_FRAME"} <= set(python)


def test_protocol_constants_match_kazoo():
    """Opcodes, error codes and event types agree with kazoo's own."""
    from kazoo import exceptions as ke
    from kazoo.protocol.states import EVENT_TYPE_MAP
    from fastzk.protocol import constants as zk

    for record, opcode in [
        (kz.Close, zk.CLOSE), (kz.Ping, zk.PING), (kz.Create, zk.CREATE),
        (kz.Delete, zk.DELETE), (kz.Exists, zk.EXISTS), (kz.GetData, zk.GET_DATA),
        (kz.SetData, zk.SET_DATA), (kz.GetACL, zk.GET_ACL), (kz.SetACL, zk.SET_ACL),
        (kz.GetChildren, zk.GET_CHILDREN), (kz.Sync, zk.SYNC),
        (kz.GetChildren2, zk.GET_CHILDREN2), (kz.CheckVersion, zk.CHECK),
        (kz.Transaction, zk.MULTI), (kz.Create2, zk.CREATE2),
        (kz.Reconfig, zk.RECONFIG), (kz.Auth, zk.AUTH), (kz.SASL, zk.SASL),
    ]:
        assert record.type == opcode, record.__name__
    for error, code in [
        (ke.SystemZookeeperError, zk.SYSTEM_ERROR),
        (ke.RuntimeInconsistency, zk.RUNTIME_INCONSISTENCY),
        (ke.DataInconsistency, zk.DATA_INCONSISTENCY),
        (ke.ConnectionLoss, zk.CONNECTION_LOSS),
        (ke.MarshallingError, zk.MARSHALLING_ERROR),
        (ke.UnimplementedError, zk.UNIMPLEMENTED),
        (ke.OperationTimeoutError, zk.OPERATION_TIMEOUT),
        (ke.BadArgumentsError, zk.BAD_ARGUMENTS),
        (ke.NewConfigNoQuorumError, zk.NEW_CONFIG_NO_QUORUM),
        (ke.ReconfigInProcessError, zk.RECONFIG_IN_PROGRESS),
        (ke.APIError, zk.API_ERROR), (ke.NoNodeError, zk.NO_NODE),
        (ke.NoAuthError, zk.NO_AUTH), (ke.BadVersionError, zk.BAD_VERSION),
        (ke.NoChildrenForEphemeralsError, zk.NO_CHILDREN_FOR_EPHEMERALS),
        (ke.NodeExistsError, zk.NODE_EXISTS), (ke.NotEmptyError, zk.NOT_EMPTY),
        (ke.SessionExpiredError, zk.SESSION_EXPIRED),
        (ke.InvalidCallbackError, zk.INVALID_CALLBACK),
        (ke.InvalidACLError, zk.INVALID_ACL), (ke.AuthFailedError, zk.AUTH_FAILED),
        (ke.SessionMovedError, zk.SESSION_MOVED),
        (ke.NotReadOnlyCallError, zk.NOT_READ_ONLY),
        (ke.NoWatcherError, zk.NO_WATCHER),
        (ke.QuotaExceededError, zk.QUOTA_EXCEEDED),
    ]:
        assert error.code == code, error.__name__
        assert ke.EXCEPTIONS[code] is error
    assert sorted(EVENT_TYPE_MAP) == [
        zk.EVENT_NONE, zk.EVENT_NODE_CREATED, zk.EVENT_NODE_DELETED,
        zk.EVENT_NODE_DATA_CHANGED, zk.EVENT_NODE_CHILDREN_CHANGED]


def test_protocol_error_is_connection_dropped():
    assert issubclass(ProtocolError, ConnectionDropped)
    assert ProtocolError.__doc__ == (
        "A frame from the server broke the ZooKeeper wire protocol."
    )


# -- encoders against kazoo ---------------------------------------------------


@HSETTINGS
@given(zxid=INT64, timeout=INT32, session=INT64,
       passwd=st.none() | st.binary(max_size=40), read_only=st.booleans())
def test_connect_matches_kazoo(codec, zxid, timeout, session, passwd, read_only):
    body = kz.Connect(0, zxid, timeout, session, passwd, read_only).serialize()
    assert codec.encode_connect(zxid, timeout, session, passwd, read_only) == (
        length_prefixed(body)
    )


@HSETTINGS
@given(xid=XIDS, path=PATHS, watch=st.booleans(), which=st.sampled_from(WATCH_OPS))
def test_path_watch_matches_kazoo(codec, xid, path, watch, which):
    name, cls = which
    opcode = getattr(codec, name)
    assert opcode == cls.type
    assert codec.encode_path_watch(xid, opcode, path, watch) == request(
        xid, opcode, cls(path, watch).serialize()
    )


@HSETTINGS
@given(xid=XIDS, path=PATHS, cls=st.sampled_from([kz.Sync, kz.GetACL]))
def test_path_matches_kazoo(codec, xid, path, cls):
    assert codec.encode_path(xid, cls.type, path) == request(
        xid, cls.type, cls(path).serialize()
    )


@HSETTINGS
@given(xid=XIDS, path=PATHS, data=DATA, acl=ACLS, flags=INT32,
       cls=st.sampled_from([kz.Create, kz.Create2]))
def test_create_matches_kazoo(codec, xid, path, data, acl, flags, cls):
    expected = request(xid, cls.type, cls(path, data, acl, flags).serialize())
    assert codec.encode_create(xid, cls.type, path, data, acl, flags) == expected
    # (perms, scheme, id) tuples encode the same as kazoo ACL objects
    tuples = [(a.perms, a.id.scheme, a.id.id) for a in acl]
    assert codec.encode_create(xid, cls.type, path, data, tuples, flags) == expected


@HSETTINGS
@given(xid=XIDS, path=PATHS, version=INT32)
def test_delete_matches_kazoo(codec, xid, path, version):
    assert codec.encode_delete(xid, path, version) == request(
        xid, 2, kz.Delete(path, version).serialize()
    )


@HSETTINGS
@given(xid=XIDS, path=PATHS, data=DATA, version=INT32)
def test_set_data_matches_kazoo(codec, xid, path, data, version):
    assert codec.encode_set_data(xid, path, data, version) == request(
        xid, 5, kz.SetData(path, data, version).serialize()
    )


@HSETTINGS
@given(xid=XIDS, path=PATHS, value=INT32)
def test_add_and_remove_watches(codec, xid, path, value):
    body = j_string(path) + j_int(value)
    assert codec.encode_add_watch(xid, path, value) == request(xid, 106, body)
    assert codec.encode_remove_watches(xid, path, value) == request(xid, 18, body)


@HSETTINGS
@given(xid=XIDS)
def test_ping_and_close_match_kazoo(codec, xid):
    assert codec.encode_ping() == request(-2, 11, kz.Ping.serialize())
    assert codec.encode_close(xid) == request(xid, -11, kz.Close.serialize())


@HSETTINGS
@given(xid=XIDS, path=PATHS, acl=ACLS, version=INT32, scheme=PATHS,
       cred=PATHS, config=INT64)
def test_raw_wraps_kazoo_records(codec, xid, path, acl, version, scheme, cred,
                                 config):
    for record in (
        kz.SetACL(path, acl, version),
        kz.Auth(0, scheme, cred),
        kz.Reconfig(path, cred, scheme, config),
    ):
        body = record.serialize()
        assert codec.encode_raw(xid, record.type, body) == request(
            xid, record.type, body
        )
        assert codec.encode_raw(xid, record.type, bytearray(body)) == request(
            xid, record.type, body
        )


def test_kazoo_acl_helpers(codec):
    acl = OPEN_ACL_UNSAFE + READ_ACL_UNSAFE + [make_digest_acl("user", "pw", all=True)]
    assert codec.encode_create(1, 1, "/n", b"v", acl, 1) == request(
        1, 1, kz.Create("/n", b"v", acl, 1).serialize()
    )


def test_empty_string_is_not_null(codec):
    # jute (and the Java client) send "" as length 0; kazoo sends it as null.
    assert codec.encode_path(1, codec.SYNC, "") == request(1, 9, j_int(0))
    assert codec.encode_create(1, 1, "/a", b"", [(31, "auth", "")], 0) == request(
        1, 1, j_string("/a") + j_int(0) + j_int(1) + j_int(31) + j_string("auth")
        + j_int(0) + j_int(0)
    )


def test_null_values(codec):
    # None data, None ACL strings and a None ACL list are jute nulls
    assert codec.encode_create(1, 1, "/a", None, None, 0) == request(
        1, 1, j_string("/a") + j_int(-1) + j_int(-1) + j_int(0)
    )
    assert codec.encode_create(1, 1, "/a", None, [(1, None, None)], 0) == request(
        1, 1, j_string("/a") + j_int(-1) + j_int(1) + j_int(1) + j_int(-1)
        + j_int(-1) + j_int(0)
    )
    assert codec.encode_connect(0, 1, 0, None, False) == length_prefixed(
        j_int(0) + j_long(0) + j_int(1) + j_long(0) + j_int(-1) + j_bool(False)
    )


def test_unicode_path_is_utf8(codec):
    path = "/d\u00e9j\u00e0/\u4e2d/\U0001f600"
    raw = path.encode("utf-8")
    assert codec.encode_path_watch(5, 4, path, False) == request(
        5, 4, j_int(len(raw)) + raw + b"\x00"
    )


def test_bytes_like_data(codec):
    expected = codec.encode_set_data(1, "/a", b"abc", 3)
    assert codec.encode_set_data(1, "/a", bytearray(b"abc"), 3) == expected
    assert codec.encode_set_data(1, "/a", memoryview(b"xabc")[1:], 3) == expected
    assert codec.encode_create(1, 1, "/a", bytearray(b"abc"), [], 0) == (
        codec.encode_create(1, 1, "/a", b"abc", [], 0)
    )


def test_acl_sequences(codec):
    expected = codec.encode_create(1, 1, "/a", b"", OPEN_ACL_UNSAFE, 0)
    assert codec.encode_create(1, 1, "/a", b"", tuple(OPEN_ACL_UNSAFE), 0) == expected
    assert codec.encode_create(1, 1, "/a", b"", iter(OPEN_ACL_UNSAFE), 0) == expected
    assert codec.encode_create(1, 1, "/a", b"", [(31, "world", "anyone")], 0) == expected


def test_large_frames(codec):
    data = os.urandom(1 << 20)
    frame = codec.encode_create(1, 15, "/big", data, OPEN_ACL_UNSAFE, 0)
    assert frame == request(1, 15, kz.Create2("/big", data, OPEN_ACL_UNSAFE, 0).serialize())


# -- SetWatches ---------------------------------------------------------------


def _parse_set_watches(frame):
    (length, xid, opcode) = struct.unpack_from("!iii", frame, 0)
    assert length == len(frame) - 4
    assert xid == -8
    assert opcode in (101, 105)
    (zxid,) = struct.unpack_from("!q", frame, 12)
    pos = 20
    lists = []
    for _ in range(5 if opcode == 105 else 3):
        (count,) = struct.unpack_from("!i", frame, pos)
        pos += 4
        items = []
        for _ in range(count):
            (n,) = struct.unpack_from("!i", frame, pos)
            items.append(frame[pos + 4 : pos + 4 + n].decode("utf-8"))
            pos += 4 + n
        lists.append(items)
    assert pos == len(frame)
    if opcode == 101:
        lists += [[], []]
    return opcode, zxid, lists


def test_set_watches_small(codec):
    frames = codec.encode_set_watches(77, ["/d"], ["/e1", "/e2"], ["/c"])
    assert frames == [
        request(-8, 101, j_long(77) + j_vector(["/d"], j_string)
                + j_vector(["/e1", "/e2"], j_string) + j_vector(["/c"], j_string))
    ]
    frames = codec.encode_set_watches(77, [], [], [], ["/p"], ["/r"])
    assert frames == [
        request(-8, 105, j_long(77) + j_int(0) + j_int(0) + j_int(0)
                + j_vector(["/p"], j_string) + j_vector(["/r"], j_string))
    ]
    assert codec.encode_set_watches(5, [], [], []) == []
    assert codec.encode_set_watches(5, (), set(), iter([]), [], []) == []


@HSETTINGS
@given(
    zxid=INT64,
    lists=st.lists(
        st.lists(st.text(min_size=1, max_size=30).map(lambda s: "/" + s), max_size=40),
        min_size=5, max_size=5,
    ),
    scale=st.sampled_from([1, 300, 2000]),
)
def test_set_watches_batches(codec, zxid, lists, scale):
    # scale pads paths so that the 128 KiB limit is reached
    lists = [[p * scale if scale > 1 else p for p in paths] for paths in lists]
    frames = codec.encode_set_watches(zxid, *lists)
    if not any(lists):
        assert frames == []
        return
    merged = [[], [], [], [], []]
    for frame in frames:
        opcode, got_zxid, parts = _parse_set_watches(frame)
        assert got_zxid == zxid
        assert (opcode == 105) == bool(parts[3] or parts[4])
        size = sum(4 + len(p.encode("utf-8")) for part in parts for p in part)
        count = sum(len(part) for part in parts)
        assert size <= 128 * 1024 or count == 1
        for merged_part, part in zip(merged, parts):
            merged_part.extend(part)
    assert merged == lists


def test_set_watches_split_like_java(codec):
    paths = ["/%05d" % i + "x" * 994 for i in range(300)]  # 1004 bytes each
    frames = codec.encode_set_watches(1, paths, [], [], paths[:10])
    per_frame = 128 * 1024 // 1004
    assert len(frames) == 3
    opcodes = [_parse_set_watches(f)[0] for f in frames]
    # plain SetWatches until persistent paths appear in a batch
    assert opcodes == [101, 101, 105]
    assert [len(_parse_set_watches(f)[2][0]) for f in frames] == [
        per_frame, per_frame, 300 - 2 * per_frame
    ]
    huge = "/" + "h" * 200000
    frames = codec.encode_set_watches(1, ["/a", huge, "/b"], [], [])
    assert [_parse_set_watches(f)[2][0] for f in frames] == [["/a"], [huge], ["/b"]]


# -- argument errors ----------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.encode_path_watch(1, 3, b"/bytes", True),
        lambda c: c.encode_path_watch(1, 3, None, True),
        lambda c: c.encode_path(1, 9, 5),
        lambda c: c.encode_path_watch(1.0, 3, "/a", True),
        lambda c: c.encode_path_watch("1", 3, "/a", True),
        lambda c: c.encode_path_watch(None, 3, "/a", True),
        lambda c: c.encode_delete(1, "/a", 1.5),
        lambda c: c.encode_set_data(1, "/a", "text", 1),
        lambda c: c.encode_set_data(1, "/a", 5, 1),
        lambda c: c.encode_create(1, 1, "/a", "text", [], 0),
        lambda c: c.encode_create(1, 1, "/a", b"", [object()], 0),
        lambda c: c.encode_create(1, 1, "/a", b"", [(1, "a")], 0),
        lambda c: c.encode_create(1, 1, "/a", b"", 5, 0),
        lambda c: c.encode_create(1, 1, "/a", b"", [(1, b"world", "anyone")], 0),
        lambda c: c.encode_create(1, 1, "/a", b"", [("31", "world", "anyone")], 0),
        lambda c: c.encode_create(1, 1, "/a", b"", [], None),
        lambda c: c.encode_create(1, "1", "/a", b"", [], 0),
        lambda c: c.encode_connect(0, 1000, 0, "pw", False),
        lambda c: c.encode_connect(0.5, 1000, 0, None, False),
        lambda c: c.encode_set_watches(1, [b"/a"], [], []),
        lambda c: c.encode_set_watches(1, ["/a"], [], [], [None]),
        lambda c: c.encode_set_watches("1", ["/a"], [], []),
        lambda c: c.encode_raw(1, 100, None),
        lambda c: c.encode_raw(1, 100, "body"),
        lambda c: c.encode_close(None),
        lambda c: c.encode_add_watch(1, "/a", None),
        lambda c: c.encode_remove_watches(1, "/a", 2.0),
    ],
)
def test_type_errors(codec, call):
    with pytest.raises(TypeError):
        call(codec)


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.encode_path_watch(2**31, 3, "/a", True),
        lambda c: c.encode_path_watch(-(2**31) - 1, 3, "/a", True),
        lambda c: c.encode_path(1, 2**40, "/a"),
        lambda c: c.encode_delete(1, "/a", 2**31),
        lambda c: c.encode_set_data(1, "/a", b"", 2**100),
        lambda c: c.encode_create(1, 1, "/a", b"", [], 2**31),
        lambda c: c.encode_create(1, 1, "/a", b"", [(2**32, "world", "anyone")], 0),
        # createContainer and createTTL are not sent by the client
        lambda c: c.encode_create(1, 19, "/a", b"", [], 4),
        lambda c: c.encode_create(1, 21, "/a", b"", [], 5),
        lambda c: c.encode_create(1, 4, "/a", b"", [], 0),
        lambda c: c.encode_create(1, 16, "/a", b"", [], 0),
        lambda c: c.encode_connect(2**63, 1000, 0, None, False),
        lambda c: c.encode_connect(0, 2**31, 0, None, False),
        lambda c: c.encode_connect(0, 1000, -(2**63) - 1, None, False),
        lambda c: c.encode_close(2**31),
        lambda c: c.encode_set_watches(2**63, ["/a"], [], []),
        lambda c: c.encode_add_watch(1, "/a", 2**31),
        lambda c: c.encode_path(1, 9, "/lone\ud800surrogate"),
    ],
)
def test_value_errors(codec, call):
    with pytest.raises(ValueError):
        call(codec)


def test_int_like_and_bool_arguments(codec):
    class Index:
        def __index__(self):
            return 7

    assert codec.encode_delete(Index(), "/a", True) == codec.encode_delete(7, "/a", 1)
    assert codec.encode_path_watch(1, 3, "/a", "truthy") == (
        codec.encode_path_watch(1, 3, "/a", True)
    )
    assert codec.encode_path_watch(1, 3, "/a", []) == (
        codec.encode_path_watch(1, 3, "/a", False)
    )


# -- decoders -----------------------------------------------------------------

FRAME_TYPES = [bytes, bytearray, memoryview]


@HSETTINGS
@given(xid=INT32, zxid=INT64, err=INT32, tail=st.binary(max_size=20),
       kind=st.sampled_from(FRAME_TYPES))
def test_reply_header(codec, xid, zxid, err, tail, kind):
    frame = j_reply_header(xid, zxid, err) + tail
    assert codec.decode_reply_header(kind(frame)) == (xid, zxid, err)
    assert tuple(kz.ReplyHeader.deserialize(frame, 0)[0]) == (xid, zxid, err)


@HSETTINGS
@given(proto=INT32, timeout=INT32, session=INT64,
       passwd=st.none() | st.binary(max_size=40),
       read_only=st.none() | st.booleans(), kind=st.sampled_from(FRAME_TYPES))
def test_connect_response(codec, proto, timeout, session, passwd, read_only, kind):
    frame = j_int(proto) + j_int(timeout) + j_long(session) + j_buffer(passwd)
    if read_only is not None:
        frame += j_bool(read_only)
    got = codec.decode_connect_response(kind(frame))
    assert got == (proto, timeout, session, passwd, bool(read_only))
    assert type(got[4]) is bool
    k = kz.Connect.deserialize(frame, 0)[0]
    assert got == (k.protocol_version, k.time_out, k.session_id, k.passwd,
                   k.read_only)


def test_connect_response_read_only_is_any_nonzero(codec):
    frame = j_int(0) + j_int(4000) + j_long(1) + j_buffer(b"p" * 16) + b"\x02"
    assert codec.decode_connect_response(frame)[4] is True


@HSETTINGS
@given(stat=STATS, prefix=st.binary(min_size=16, max_size=16),
       kind=st.sampled_from(FRAME_TYPES))
def test_stat(codec, stat, prefix, kind):
    frame = prefix + j_stat(stat)
    got = codec.decode_stat(kind(frame), 16)
    assert type(got) is ZnodeStat
    assert got == ZnodeStat(*stat) == kz.SetData.deserialize(frame, 16)
    assert got.czxid == stat[0] and got.pzxid == stat[10]
    assert hash(got) == hash(ZnodeStat(*stat))
    assert got.last_modified == stat[3] / 1000.0


@HSETTINGS
@given(data=DATA, stat=STATS, kind=st.sampled_from(FRAME_TYPES))
def test_data_stat(codec, data, stat, kind):
    frame = j_reply_header() + j_buffer(data) + j_stat(stat)
    got = codec.decode_data_stat(kind(frame), 16)
    assert got == (data, ZnodeStat(*stat)) == kz.GetData.deserialize(frame, 16)
    assert data is None or type(got[0]) is bytes


@HSETTINGS
@given(children=st.lists(TEXT, max_size=60), kind=st.sampled_from(FRAME_TYPES))
def test_children(codec, children, kind):
    frame = j_reply_header() + j_vector(children, j_string)
    assert codec.decode_children(kind(frame), 16) == children
    assert codec.decode_children(frame, 16) == kz.GetChildren.deserialize(frame, 16)


@HSETTINGS
@given(children=st.lists(TEXT, max_size=60), stat=STATS,
       kind=st.sampled_from(FRAME_TYPES))
def test_children_stat(codec, children, stat, kind):
    frame = j_reply_header() + j_vector(children, j_string) + j_stat(stat)
    got = codec.decode_children_stat(kind(frame), 16)
    assert got == (children, ZnodeStat(*stat))
    assert got == kz.GetChildren2.deserialize(frame, 16)


def test_null_vectors_and_strings(codec):
    head = j_reply_header()
    assert codec.decode_children(head + j_int(-1), 16) == []
    assert codec.decode_children_stat(head + j_int(-1) + j_stat(range(11)), 16) == (
        [], ZnodeStat(*range(11))
    )
    assert codec.decode_children(head + j_int(2) + j_int(-1) + j_string("a"), 16) == [
        None, "a"
    ]
    assert codec.decode_string(head + j_int(-1), 16) is None
    assert codec.decode_data_stat(head + j_int(-1) + j_stat(range(11)), 16)[0] is None
    assert codec.decode_data_stat(head + j_int(0) + j_stat(range(11)), 16)[0] == b""
    assert codec.decode_watch_event(head + j_int(-1) + j_int(3) + j_int(-1), 16) == (
        -1, 3, None
    )


@HSETTINGS
@given(value=st.none() | TEXT, stat=STATS, kind=st.sampled_from(FRAME_TYPES))
def test_string_and_string_stat(codec, value, stat, kind):
    frame = j_reply_header() + j_string(value)
    assert codec.decode_string(kind(frame), 16) == value
    if value:  # kazoo turns "" into None on the way out, not on the way in
        assert kz.Create.deserialize(frame, 16) == value
    frame2 = frame + j_stat(stat)
    assert codec.decode_string_stat(kind(frame2), 16) == (value, ZnodeStat(*stat))
    assert codec.decode_string_stat(frame2, 16) == kz.Create2.deserialize(frame2, 16)


@HSETTINGS
@given(etype=INT32, state=INT32, path=st.none() | TEXT,
       kind=st.sampled_from(FRAME_TYPES))
def test_watch_event(codec, etype, state, path, kind):
    frame = j_reply_header(-1, -1, 0) + j_int(etype) + j_int(state) + j_string(path)
    assert codec.decode_watch_event(kind(frame), 16) == (etype, state, path)
    assert tuple(kz.Watch.deserialize(frame, 16)[0]) == (etype, state, path)


MULTI_RESULTS = st.one_of(
    st.tuples(st.just(1), st.none() | TEXT),
    st.tuples(st.just(15), st.tuples(st.none() | TEXT, STATS)),
    st.tuples(st.just(5), STATS),
    st.tuples(st.just(2), st.none()),
    st.tuples(st.just(13), st.none()),
    st.tuples(st.just(-1), INT32),
)


def j_multi_response(results):
    out = b""
    for op, value in results:
        out += j_multi_header(op, False, value if op == -1 else 0)
        if op == 1:
            out += j_string(value)
        elif op == 15:
            out += j_string(value[0]) + j_stat(value[1])
        elif op == 5:
            out += j_stat(value)
        elif op == -1:
            out += j_int(value)
    return out + j_multi_header(-1, True, -1)


def _expected_multi(results):
    out = []
    for op, value in results:
        if op == 15:
            value = (value[0], ZnodeStat(*value[1]))
        elif op == 5:
            value = ZnodeStat(*value)
        out.append((op, value))
    return out


@HSETTINGS
@given(results=st.lists(MULTI_RESULTS, max_size=10), tail=st.binary(max_size=8),
       kind=st.sampled_from(FRAME_TYPES))
def test_multi(codec, results, tail, kind):
    frame = j_reply_header() + j_multi_response(results) + tail
    assert codec.decode_multi(kind(frame), 16) == _expected_multi(results)


def test_multi_against_kazoo(codec):
    results = [(1, "/a"), (2, None), (5, tuple(range(11))), (13, None)]
    frame = j_reply_header() + j_multi_response(results)
    got = codec.decode_multi(frame, 16)
    assert got == _expected_multi(results)
    assert kz.Transaction.deserialize(frame, 16) == ["/a", True, ZnodeStat(*range(11)), True]
    # a failed transaction: every result is an error
    frame = j_reply_header(err=-101) + j_multi_response([(-1, 0), (-1, -101)])
    assert codec.decode_multi(frame, 16) == [(-1, 0), (-1, -101)]
    assert [type(e).__name__ for e in kz.Transaction.deserialize(frame, 16)] == [
        "RolledBackError", "NoNodeError"
    ]


def test_multi_done_flag_any_nonzero(codec):
    frame = j_reply_header() + j_multi_header(2, False, 0) + j_int(-1) + b"\x07" + j_int(-1)
    assert codec.decode_multi(frame, 16) == [(2, None)]


def test_multi_unknown_type(codec):
    frame = j_reply_header() + j_multi_header(99, False, 0) + j_multi_header(-1, True, -1)
    with pytest.raises(ProtocolError):
        codec.decode_multi(frame, 16)


def test_negative_offset(codec):
    frame = j_reply_header() + j_stat(range(11))
    for decode in (codec.decode_stat, codec.decode_data_stat, codec.decode_children,
                   codec.decode_string, codec.decode_multi):
        with pytest.raises(ValueError):
            decode(frame, -1)


def test_offset_past_end(codec):
    for decode in (codec.decode_stat, codec.decode_children, codec.decode_string,
                   codec.decode_multi, codec.decode_watch_event):
        with pytest.raises(ProtocolError):
            decode(b"\x00" * 16, 17)


@pytest.mark.parametrize(
    "body",
    [
        j_int(-2),  # negative length other than null
        j_int(-(2**31)),
        j_int(5) + b"abc",  # length past the end
        j_int(2**31 - 1),
        j_int(2) + b"\xc3\x28",  # invalid UTF-8
        j_int(3) + b"\xed\xa0\x80",  # UTF-8 encoded surrogate
        j_int(1) + b"\xff",
    ],
)
def test_bad_strings(codec, body):
    head = j_reply_header()
    with pytest.raises(ProtocolError):
        codec.decode_string(head + body, 16)
    with pytest.raises(ProtocolError):
        codec.decode_string_stat(head + body + j_stat(range(11)), 16)
    with pytest.raises(ProtocolError):
        codec.decode_children(head + j_int(1) + body, 16)
    with pytest.raises(ProtocolError):
        codec.decode_watch_event(head + j_int(1) + j_int(3) + body, 16)
    with pytest.raises(ProtocolError):
        codec.decode_multi(head + j_multi_header(1, False, 0) + body
                           + j_multi_header(-1, True, -1), 16)


@pytest.mark.parametrize("count", [-2, -(2**31), 2, 2**31 - 1, 10**6])
def test_bad_vector_counts(codec, count):
    frame = j_reply_header() + j_int(count) + j_string("only-one")
    with pytest.raises(ProtocolError):
        codec.decode_children(frame, 16)
    with pytest.raises(ProtocolError):
        codec.decode_children_stat(frame, 16)


@pytest.mark.parametrize("length", [-2, -(2**31), 10, 2**31 - 1])
def test_bad_buffers(codec, length):
    with pytest.raises(ProtocolError):
        codec.decode_data_stat(j_reply_header() + j_int(length) + b"\x00" * 8, 16)
    with pytest.raises(ProtocolError):
        codec.decode_connect_response(j_int(0) + j_int(1) + j_long(1) + j_int(length))


# -- truncation and garbage ---------------------------------------------------


def _valid_samples():
    """(decoder name, offset, frame) for a set of well-formed frames."""
    stat = j_stat((1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11))
    head = j_reply_header()
    kids = ["a", "bb", "\u00fcml\u00e4ut", "", "\U0001f600"]
    return [
        ("decode_reply_header", None, head),
        ("decode_connect_response", None,
         j_int(0) + j_int(4000) + j_long(99) + j_buffer(b"p" * 16) + j_bool(True)),
        ("decode_connect_response", None,
         j_int(0) + j_int(4000) + j_long(99) + j_buffer(None)),
        ("decode_stat", 16, head + stat),
        ("decode_data_stat", 16, head + j_buffer(b"data\x00\xff") + stat),
        ("decode_data_stat", 16, head + j_buffer(None) + stat),
        ("decode_children", 16, head + j_vector(kids, j_string)),
        ("decode_children", 16, head + j_vector([], j_string)),
        ("decode_children_stat", 16, head + j_vector(kids, j_string) + stat),
        ("decode_string", 16, head + j_string("/a/b\u00e9")),
        ("decode_string", 16, head + j_string(None)),
        ("decode_string_stat", 16, head + j_string("/node0000000001") + stat),
        ("decode_watch_event", 16, head + j_int(3) + j_int(3) + j_string("/w")),
        ("decode_multi", 16, head + j_multi_response(
            [(1, "/c"), (15, ("/c2", tuple(range(11)))), (5, tuple(range(11))),
             (2, None), (13, None), (-1, -101)])),
        ("decode_multi", 16, head + j_multi_response([])),
    ]


def _call(codec, name, offset, frame):
    decode = getattr(codec, name)
    return decode(frame) if offset is None else decode(frame, offset)


@pytest.mark.parametrize("sample", _valid_samples(), ids=lambda s: s[0])
def test_every_truncation_raises(codec, sample):
    name, offset, frame = sample
    full = _call(codec, name, offset, frame)
    for cut in range(len(frame)):
        short = frame[:cut]
        if name == "decode_connect_response" and cut == len(frame) - 1 and full[4]:
            # the trailing readOnly flag is optional
            assert _call(codec, name, offset, short) == full[:4] + (False,)
            continue
        for kind in FRAME_TYPES:
            with pytest.raises(ProtocolError):
                _call(codec, name, offset, kind(short))


DECODERS = [
    ("decode_reply_header", None),
    ("decode_connect_response", None),
    ("decode_stat", 0),
    ("decode_stat", 16),
    ("decode_data_stat", 16),
    ("decode_data_stat", 0),
    ("decode_children", 16),
    ("decode_children", 0),
    ("decode_children_stat", 16),
    ("decode_string", 16),
    ("decode_string", 0),
    ("decode_string_stat", 16),
    ("decode_watch_event", 16),
    ("decode_multi", 16),
    ("decode_multi", 0),
]


def _outcome(codec, name, offset, frame):
    try:
        return ("ok", _call(codec, name, offset, frame))
    except ProtocolError:
        return ("error", None)


def _reader_outcome(codec, stream, chunks, max_frame):
    reader = codec.FrameReader(max_frame=max_frame)
    got, start = [], 0
    for size in chunks + [len(stream)]:
        reader.feed(stream[start:start + size])
        start += size
        try:
            frame = reader.next_frame()
            while frame is not None:
                got.append(frame)
                frame = reader.next_frame()
        except ProtocolError:
            return got, True
    return got, False


@st.composite
def _mutated_samples(draw):
    """A well-formed frame with 1-4 of its bytes replaced."""
    frame = bytearray(draw(st.sampled_from(
        [frame for _, _, frame in _valid_samples()])))
    for _ in range(draw(st.integers(1, 4))):
        frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
    return bytes(frame)


#: One fuzzer input: a frame (random bytes, or a mutated well-formed
#: frame), an extra decoder offset, FrameReader chunk sizes and a small
#: max_frame.
FUZZ_CASES = st.tuples(
    st.binary(max_size=200) | _mutated_samples(),
    st.integers(0, 64),
    st.lists(st.integers(0, 32), max_size=6),
    st.integers(0, 64),
)


def check_fuzzed(impls, frame, offset, chunks, small):
    """The codec fuzzer's check, for the hypothesis test below and for
    tests/fuzz/fuzz_codec.py (atheris).

    Every decoder, at its usual offsets and at ``offset``, on ``frame`` as
    bytes, bytearray and memoryview, returns a value or raises
    ProtocolError, the same in every implementation; and ``frame`` fed
    as a stream in ``chunks`` to each implementation's FrameReader gives
    the frames of the model (ProtocolError exactly where it sees a bad
    length prefix).
    """
    for name, at in DECODERS + [(name, offset) for name, at in DECODERS
                                if at is not None]:
        outcomes = {(codec.IMPLEMENTATION, kind.__name__):
                    _outcome(codec, name, at, kind(frame))
                    for codec in impls for kind in FRAME_TYPES}
        assert len(set(map(repr, outcomes.values()))) == 1, (name, at, outcomes)
    for max_frame in (small, impls[0].DEFAULT_MAX_FRAME):
        expected = model_frames(frame, max_frame)
        for codec in impls:
            assert _reader_outcome(codec, frame, chunks, max_frame) == expected


@HSETTINGS_MORE
@given(case=FUZZ_CASES)
def test_fuzzed_frames(impls, case):
    check_fuzzed(impls, *case)


@HSETTINGS
@given(data=st.data())
def test_implementations_agree_on_encoding(both, data):
    """Every encoder gives the same bytes in both implementations."""
    py, cy = both
    xid = data.draw(XIDS)
    zxid = data.draw(INT64)
    path = data.draw(PATHS | st.just(""))
    payload = data.draw(DATA)
    acl = data.draw(ACLS)
    flags = data.draw(INT32)
    version = data.draw(INT32)
    calls = {
        "encode_connect": lambda c: c.encode_connect(
            zxid, flags, zxid ^ 1, payload, version & 1),
        "encode_path_watch": lambda c: c.encode_path_watch(
            xid, c.GET_DATA, path, version & 1),
        "encode_path": lambda c: c.encode_path(xid, c.SYNC, path),
        "encode_create": lambda c: [
            c.encode_create(xid, opcode, path, payload, acl, flags)
            for opcode in (c.CREATE, c.CREATE2)],
        "encode_delete": lambda c: c.encode_delete(xid, path, version),
        "encode_set_data": lambda c: c.encode_set_data(xid, path, payload, version),
        "encode_add_watch": lambda c: c.encode_add_watch(xid, path, version & 1),
        "encode_remove_watches": lambda c: c.encode_remove_watches(
            xid, path, version),
        "encode_set_watches": lambda c: c.encode_set_watches(
            zxid, [path], [path], [], [path] * (flags & 1), [path] * (xid & 1)),
        "encode_ping": lambda c: c.encode_ping(),
        "encode_close": lambda c: c.encode_close(xid),
        "encode_raw": lambda c: c.encode_raw(xid, flags, payload or b""),
    }
    assert sorted(calls) == sorted(n for n in py.__all__ if n.startswith("encode_"))
    for name, call in calls.items():
        assert call(py) == call(cy), name


def test_the_fuzzer_runs_every_decoder(both):
    """test_fuzzed_frames (the differential decoder fuzzer) covers every
    decoder either implementation exposes."""
    for codec in both:
        assert {name for name, _ in DECODERS} == {
            n for n in codec.__all__ if n.startswith("decode_")}


# -- FrameReader ----------------------------------------------------------------


def _stream(bodies):
    return b"".join(length_prefixed(b) for b in bodies)


def _drain(reader):
    out = []
    frame = reader.next_frame()
    while frame is not None:
        assert type(frame) is bytes
        out.append(frame)
        frame = reader.next_frame()
    return out


@HSETTINGS
@given(bodies=st.lists(st.binary(max_size=300) | LARGE, max_size=12),
       data=st.data())
def test_reader_any_chunking(codec, bodies, data):
    stream = _stream(bodies)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=40)))
    kind = data.draw(st.sampled_from(FRAME_TYPES))
    reader = codec.FrameReader()
    got = []
    start = 0
    for cut in cuts + [len(stream)]:
        reader.feed(kind(stream[start:cut]))
        start = cut
        got.extend(_drain(reader))
    assert got == bodies
    assert reader.buffered() == 0
    assert reader.next_frame() is None


def test_reader_byte_by_byte(codec):
    bodies = [b"", b"a", b"hello" * 100, bytes(range(256))]
    reader = codec.FrameReader()
    got = []
    for byte in _stream(bodies):
        reader.feed(bytes([byte]))
        got.extend(_drain(reader))
        assert reader.buffered() < 4 + 1280
    assert got == bodies


def test_reader_buffered(codec):
    reader = codec.FrameReader()
    assert reader.buffered() == 0
    reader.feed(j_int(10) + b"abc")
    assert reader.buffered() == 7
    assert reader.next_frame() is None
    reader.feed(b"defghij" + j_int(1))
    assert reader.next_frame() == b"abcdefghij"
    assert reader.buffered() == 4
    assert reader.next_frame() is None


def test_reader_frame_limits(codec):
    reader = codec.FrameReader()
    reader.feed(j_int(-1))
    with pytest.raises(ProtocolError):
        reader.next_frame()
    reader = codec.FrameReader()
    reader.feed(j_int(codec.DEFAULT_MAX_FRAME + 1))
    with pytest.raises(ProtocolError):
        reader.next_frame()
    reader = codec.FrameReader(max_frame=10)
    assert reader.max_frame == 10
    reader.feed(length_prefixed(b"x" * 10) + j_int(11))
    assert reader.next_frame() == b"x" * 10
    with pytest.raises(ProtocolError):
        reader.next_frame()
    reader = codec.FrameReader(max_frame=0)
    reader.feed(j_int(0))
    assert reader.next_frame() == b""
    with pytest.raises(ValueError):
        codec.FrameReader(max_frame=-1)


def test_reader_big_frame(codec):
    body = os.urandom(2000000)
    reader = codec.FrameReader(max_frame=4 << 20)
    stream = _stream([b"small", body, b"tail"])
    for i in range(0, len(stream), 70000):
        reader.feed(stream[i : i + 70000])
    assert _drain(reader) == [b"small", body, b"tail"]


# -- FrameReader.read_from ------------------------------------------------------


@pytest.fixture
def sockpair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


@pytest.mark.parametrize("mode", ["blocking", "nonblocking", "timeout"])
@pytest.mark.parametrize("spin_us", [0, 200])
def test_read_from_socket(codec, sockpair, mode, spin_us):
    a, b = sockpair
    if mode == "nonblocking":
        a.setblocking(False)
    elif mode == "timeout":
        a.settimeout(3.0)
    before = a.gettimeout()
    reader = codec.FrameReader()
    bodies = [b"one", b"two" * 1000, b""]
    b.sendall(_stream(bodies))
    got = []
    while len(got) < len(bodies):
        n = reader.read_from(a, 2.0, spin_us)
        assert n > 0
        got.extend(_drain(reader))
    assert got == bodies
    assert a.gettimeout() == before
    # nothing more: a timeout returns 0 after about the timeout
    start = time.monotonic()
    assert reader.read_from(a, 0.05, spin_us) == 0
    assert 0.04 <= time.monotonic() - start < 1.5
    assert reader.read_from(a, 0, spin_us) == 0
    assert a.gettimeout() == before


def test_read_from_reports_the_spins_time_off_the_cpu(codec, sockpair):
    """The busy-poll's off-CPU time feeds fastzk.drivers.spin: it is 0 without a
    spin, and a spin that another busy thread shares a CPU with loses some
    (the pure-Python reader never spins)."""
    a, b = sockpair
    reader = codec.FrameReader()
    assert reader.spin_off_cpu_ns == 0
    assert reader.read_from(a, 0.01, 0) == 0
    assert reader.spin_off_cpu_ns == 0
    if codec.IMPLEMENTATION != "cython":
        assert reader.read_from(a, 0.01, 2000) == 0
        assert reader.spin_off_cpu_ns == 0
        return
    # Busy processes on this thread's CPU: the spinning thread is preempted
    # in at least one of these 20 ms spins.  Pinned to one CPU where the
    # platform allows, else one busy process per CPU and then some.
    pin = hasattr(os, "sched_setaffinity")
    if pin:
        allowed = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(allowed)})
    hogs = []
    try:
        for _ in range(2 if pin else (os.cpu_count() or 1) + 1):
            hogs.append(subprocess.Popen(
                [sys.executable, "-c", "while True: pass"]))
        lost = []
        for _ in range(20):
            assert reader.read_from(a, 0.05, 20_000) == 0
            lost.append(reader.spin_off_cpu_ns)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        if pin:
            os.sched_setaffinity(0, allowed)
    assert all(ns >= 0 for ns in lost)
    assert max(lost) > 1_000_000, lost
    b.sendall(_stream([b"x"]))
    assert reader.read_from(a, 1.0, 20_000) > 0


def test_read_from_waits_for_data(codec, sockpair):
    a, b = sockpair
    reader = codec.FrameReader()
    timer = threading.Timer(0.1, b.sendall, (length_prefixed(b"late"),))
    timer.start()
    try:
        start = time.monotonic()
        n = reader.read_from(a, None)
        assert n == 8
        assert time.monotonic() - start >= 0.05
        assert reader.next_frame() == b"late"
    finally:
        timer.join()


def test_block_reads_waits_in_one_recv(codec, sockpair):
    """After block_reads the compiled reader waits in a blocking recv():
    the descriptor is blocking, a reply that comes late is read, a wait
    with nothing to read still ends at its timeout, and a shorter wait
    than block_reads' timeout is not held to it.  The pure-Python reader
    leaves the socket alone and reads the same."""
    a, b = sockpair
    a.settimeout(3.0)
    reader = codec.FrameReader()
    blocking = reader.block_reads(a, 0.3)
    assert blocking is (codec.IMPLEMENTATION == "cython")
    assert os.get_blocking(a.fileno()) is blocking
    assert a.gettimeout() == 3.0
    for timeout in (0.3, None):
        timer = threading.Timer(0.1, b.sendall, (length_prefixed(b"late"),))
        timer.start()
        try:
            start = time.monotonic()
            assert reader.read_from(a, timeout) == 8
            assert time.monotonic() - start >= 0.05
            assert reader.next_frame() == b"late"
        finally:
            timer.join()
    start = time.monotonic()
    assert reader.read_from(a, 0.3) == 0
    assert 0.25 <= time.monotonic() - start < 1.5
    start = time.monotonic()
    assert reader.read_from(a, 0.05) == 0
    assert 0.04 <= time.monotonic() - start < 0.25
    b.close()
    with pytest.raises(ConnectionDropped, match="closed by server"):
        reader.read_from(a, 0.3)


def test_block_reads_survives_a_non_blocking_descriptor(codec, sockpair):
    """A socket made non-blocking again (settimeout) after block_reads:
    recv() returns at once, and the reader still waits out its timeout."""
    a, b = sockpair
    reader = codec.FrameReader()
    reader.block_reads(a, 0.3)
    a.settimeout(2.0)
    assert os.get_blocking(a.fileno()) is False
    start = time.monotonic()
    assert reader.read_from(a, 0.3) == 0
    assert 0.25 <= time.monotonic() - start < 1.5
    b.sendall(length_prefixed(b"x"))
    assert reader.read_from(a, 0.3) == 5
    assert reader.next_frame() == b"x"


def test_block_reads_bounds_sends(codec, sockpair):
    """A send to a peer that reads nothing still fails in time."""
    a, _ = sockpair
    a.settimeout(0.5)
    codec.FrameReader().block_reads(a, 0.3)
    start = time.monotonic()
    with pytest.raises(OSError):
        codec.send_all(a, b"x" * (64 << 20))
    assert time.monotonic() - start < 10


def test_block_reads_leaves_tls_sockets_and_checks_its_arguments(codec):
    reader = codec.FrameReader()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with context.wrap_socket(socket.socket(), server_hostname="zk",
                             do_handshake_on_connect=False) as tls:
        assert reader.block_reads(tls, 1.0) is False
    with socket.socket() as plain:
        for timeout in (0, -1.0, 1e7):
            with pytest.raises(ValueError):
                reader.block_reads(plain, timeout)
    with pytest.raises(TypeError):
        reader.block_reads("not a socket", 1.0)


def test_read_from_eof(codec, sockpair):
    a, b = sockpair
    reader = codec.FrameReader()
    b.sendall(length_prefixed(b"last"))
    b.close()
    assert reader.read_from(a, 1.0) == 8
    with pytest.raises(ConnectionDropped, match="closed by server"):
        reader.read_from(a, 1.0)
    with pytest.raises(ConnectionDropped, match="closed by server"):
        reader.read_from(a, 1.0, 100)
    assert reader.next_frame() == b"last"


def test_read_from_closed_socket(codec, sockpair):
    a, _ = sockpair
    a.close()
    with pytest.raises(ConnectionDropped):
        codec.FrameReader().read_from(a, 0.1)


def test_read_from_socket_error(codec):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname())
    conn, _ = server.accept()
    try:
        # RST instead of FIN: recv fails with ECONNRESET
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        with pytest.raises(ConnectionDropped):
            codec.FrameReader().read_from(client, 1.0)
    finally:
        client.close()
        server.close()


def test_read_from_large_stream(codec, sockpair):
    """Several MB through a socket: buffer growth and compaction."""
    a, b = sockpair
    rnd = random.Random(5)
    bodies = [rnd.randbytes(rnd.choice([0, 10, 1000, 70000, 300000]))
              for _ in range(60)]
    bodies.append(rnd.randbytes(1500000))
    stream = _stream(bodies)
    sender = threading.Thread(target=b.sendall, args=(stream,))
    sender.start()
    reader = codec.FrameReader(max_frame=2 << 20)
    got = []
    try:
        while len(got) < len(bodies):
            assert reader.read_from(a, 5.0) > 0
            got.extend(_drain(reader))
    finally:
        sender.join()
    assert got == bodies
    assert reader.buffered() == 0


def test_read_from_releases_the_gil(codec, sockpair):
    a, _ = sockpair
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        time.sleep(0.01)
        before = counter[0]
        assert codec.FrameReader().read_from(a, 0.2) == 0
        during = counter[0] - before
    finally:
        stop.set()
        thread.join()
    assert during > 1000


def test_read_from_one_thread_at_a_time(codec, sockpair):
    a, b = sockpair
    reader = codec.FrameReader()
    result = []
    thread = threading.Thread(target=lambda: result.append(reader.read_from(a, 5.0)))
    thread.start()
    time.sleep(0.1)
    try:
        with pytest.raises(RuntimeError):
            reader.feed(b"x" * 10**6)
        with pytest.raises(RuntimeError):
            reader.read_from(a, 0.01)
    finally:
        b.sendall(length_prefixed(b"wake"))
        thread.join()
    assert result == [8]
    assert reader.next_frame() == b"wake"


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_read_from_survives_signals(codec, sockpair):
    a, _ = sockpair
    hits = []
    old = signal.signal(signal.SIGALRM, lambda *args: hits.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
        start = time.monotonic()
        assert codec.FrameReader().read_from(a, 0.3) == 0
        assert codec.FrameReader().read_from(a, 0.1, 50000) == 0
        elapsed = time.monotonic() - start
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert len(hits) >= 3
    assert 0.35 <= elapsed < 3


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_read_from_propagates_signal_exceptions(codec, sockpair):
    a, _ = sockpair

    class Interrupted(Exception):
        pass

    def handler(*args):
        raise Interrupted()

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(Interrupted):
            codec.FrameReader().read_from(a, 5.0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class _WrappedSocket(object):
    """A socket-like object that is not a socket (like gevent's)."""

    def __init__(self, sock):
        self._sock = sock

    def fileno(self):
        return self._sock.fileno()

    def recv(self, n):
        return self._sock.recv(n)

    def recv_into(self, buf, n=0, flags=0):
        return self._sock.recv_into(buf, n, flags)

    def gettimeout(self):
        return self._sock.gettimeout()


def test_read_from_refuses_what_is_not_a_socket(codec, sockpair):
    """The reader reads sockets only (plain, or SSL through the TLS
    layer): a socket-like object is a TypeError, not a silent read of its
    descriptor, and leaves the reader usable."""
    a, b = sockpair
    reader = codec.FrameReader()
    for sock in (_WrappedSocket(a), None, a.fileno()):
        with pytest.raises(TypeError):
            reader.read_from(sock, 0.01)
    b.sendall(_stream([b"x"]))
    assert reader.read_from(a, 1.0) > 0
    assert _drain(reader) == [b"x"]


# -- against a real server ------------------------------------------------------


class RawSession(object):
    """A bare ZooKeeper session driven by the codec alone."""

    def __init__(self, codec, address):
        self.codec = codec
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = codec.FrameReader()
        self.events = []
        self.xid = 0
        self.sock.sendall(codec.encode_connect(0, 10000, 0, b"\x00" * 16, False))
        proto, timeout, session_id, passwd, read_only = codec.decode_connect_response(
            self.next_frame())
        assert proto == 0 and timeout == 10000 and session_id != 0
        assert len(passwd) == 16 and read_only is False

    def next_frame(self):
        while True:
            frame = self.reader.next_frame()
            if frame is not None:
                return frame
            assert self.reader.read_from(self.sock, 10.0, 50) > 0, "no reply"

    def reply(self, xid):
        """Frames until the reply for ``xid``: ``(err, frame)``."""
        while True:
            frame = self.next_frame()
            got, zxid, err = self.codec.decode_reply_header(frame)
            if got == self.codec.WATCH_XID:
                self.events.append(self.codec.decode_watch_event(frame, 16))
                continue
            assert got == xid
            return err, frame

    def call(self, encode, *args):
        self.xid += 1
        self.sock.sendall(encode(self.xid, *args))
        return self.reply(self.xid)

    def wait_event(self, event):
        while event not in self.events:
            frame = self.next_frame()
            xid, _, _ = self.codec.decode_reply_header(frame)
            assert xid == self.codec.WATCH_XID
            self.events.append(self.codec.decode_watch_event(frame, 16))

    def close(self):
        err, _ = self.call(self.codec.encode_close)
        assert err == 0
        with pytest.raises(ConnectionDropped):
            while True:
                self.next_frame()
        self.sock.close()


def test_round_trips_with_zookeeper(codec, zk_server, zk_chroot):
    c = codec
    zk = RawSession(c, zk_server.address)
    base = zk_chroot + "/codec"
    acl = OPEN_ACL_UNSAFE

    def multi(xid, ops):
        # the client sends transactions serialised by kazoo
        return c.encode_raw(xid, c.MULTI, kz.Transaction(ops).serialize())

    err, frame = zk.call(lambda x: c.encode_create(x, c.CREATE2, base, b"v1", acl, 0))
    assert err == 0
    path, stat = c.decode_string_stat(frame, 16)
    assert path == base and stat.dataLength == 2 and stat.version == 0

    err, frame = zk.call(lambda x: c.encode_create(x, c.CREATE, base + "/seq-", None, acl, 2))
    assert err == 0 and c.decode_string(frame, 16) == base + "/seq-0000000000"
    err, frame = zk.call(lambda x: c.encode_create(
        x, c.CREATE2, base + "/node", b"", acl, 0))
    assert err == 0 and c.decode_string_stat(frame, 16)[0] == base + "/node"
    err, frame = zk.call(lambda x: c.encode_create(
        x, c.CREATE2, base + "/unicod\u00e9", b"t", [(31, "world", "anyone")], 0))
    assert err == 0 and c.decode_string_stat(frame, 16)[0] == base + "/unicod\u00e9"

    err, frame = zk.call(c.encode_path_watch, c.EXISTS, base, True)
    assert err == 0
    stat = c.decode_stat(frame, 16)
    assert stat.czxid == stat.mzxid and stat.numChildren == 3
    err, frame = zk.call(c.encode_path_watch, c.GET_DATA, base, True)
    assert err == 0 and c.decode_data_stat(frame, 16) == (b"v1", stat)
    err, frame = zk.call(c.encode_path_watch, c.GET_CHILDREN2, base, False)
    children, stat2 = c.decode_children_stat(frame, 16)
    assert sorted(children) == ["node", "seq-0000000000", "unicod\u00e9"]
    assert stat2.numChildren == 3
    err, frame = zk.call(c.encode_path_watch, c.GET_CHILDREN, base, True)
    assert sorted(c.decode_children(frame, 16)) == sorted(children)
    err, frame = zk.call(c.encode_path_watch, c.EXISTS, base + "/missing", False)
    assert err == -101  # NoNode

    err, frame = zk.call(c.encode_set_data, base, b"v2", 5)
    assert err == -103  # BadVersion
    err, frame = zk.call(c.encode_set_data, base, b"v2" * 1000, 0)
    assert err == 0 and c.decode_stat(frame, 16).version == 1
    zk.wait_event((3, 3, base))  # NodeDataChanged, SyncConnected

    err, frame = zk.call(multi, [
        kz.Create(base + "/m", b"m", acl, 0),
        kz.SetData(base, None, 1),
        kz.CheckVersion(base, 2),
        kz.Delete(base + "/m", 0),
    ])
    assert err == 0
    results = c.decode_multi(frame, 16)
    assert [op for op, _ in results] == [1, 5, 13, 2]
    assert results[0][1] == base + "/m" and results[1][1].version == 2
    zk.wait_event((4, 3, base))  # NodeChildrenChanged
    err, frame = zk.call(multi, [
        kz.Create(base + "/m2", b"", acl, 0),
        kz.CheckVersion(base, 99),
        kz.Delete(base + "/m2", 0),
    ])
    # a failed multi still has err 0 in its reply header (ZooKeeper 3.8):
    # the errors are in the results (0 rolled back, -2 not run)
    assert err == 0
    assert c.decode_multi(frame, 16) == [(-1, 0), (-1, -103), (-1, -2)]

    err, frame = zk.call(c.encode_path, c.SYNC, base)
    assert err == 0 and c.decode_string(frame, 16) == base
    err, frame = zk.call(c.encode_path, c.GET_ACL, base)
    assert err == 0 and kz.GetACL.deserialize(frame, 16)[0] == OPEN_ACL_UNSAFE

    # persistent recursive watch (3.6+)
    err, _ = zk.call(c.encode_add_watch, base, 1)
    assert err == 0
    err, _ = zk.call(lambda x: c.encode_create(x, c.CREATE, base + "/deep", b"", acl, 0))
    assert err == 0
    zk.wait_event((1, 3, base + "/deep"))  # NodeCreated
    err, _ = zk.call(c.encode_path_watch, c.GET_CHILDREN, base + "/node", True)
    assert err == 0
    err, _ = zk.call(c.encode_remove_watches, base + "/node", 1)
    assert err == 0
    err, _ = zk.call(c.encode_remove_watches, base + "/node", 1)
    assert err == -121  # NoWatcher

    zk.sock.sendall(c.encode_ping())
    assert zk.reply(c.PING_XID)[0] == 0
    err, frame = zk.call(c.encode_delete, base + "/deep", 0)
    assert err == 0
    zk.close()

    # SetWatches / SetWatches2 on a new session: relativeZxid 0 makes the
    # server fire catch-up events at once.
    other = RawSession(c, zk_server.address)
    frames = c.encode_set_watches(0, [base], [base + "/seq-0000000000"], [base])
    assert len(frames) == 1 and frames[0][8:12] == j_int(c.SET_WATCHES)
    other.sock.sendall(frames[0])
    assert other.reply(c.SET_WATCHES_XID)[0] == 0
    other.wait_event((3, 3, base))
    other.wait_event((4, 3, base))
    other.wait_event((1, 3, base + "/seq-0000000000"))
    frames = c.encode_set_watches(0, [], [], [], [base + "/node"], [base])
    assert frames[0][8:12] == j_int(c.SET_WATCHES2)
    other.sock.sendall(frames[0])
    assert other.reply(c.SET_WATCHES_XID)[0] == 0
    err, _ = other.call(lambda x: c.encode_create(
        x, c.CREATE, base + "/node/x", b"", acl, 1))
    assert err == 0
    other.wait_event((1, 3, base + "/node/x"))
    other.close()


# -- send_all ---------------------------------------------------------------


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_send_all_sends_everything_even_past_the_socket_buffer(codec, kind):
    a, b = socket.socketpair()
    try:
        a.settimeout(10)
        payload = bytes(random.Random(7).getrandbits(8) for _ in range(4096))
        payload = payload * 256  # 1 MiB: more than one non-blocking send
        expected = payload + b"tail"
        received = bytearray()

        def drain():
            while len(received) < len(expected):
                chunk = b.recv(65536)
                if not chunk:
                    return
                received.extend(chunk)

        reader = threading.Thread(target=drain)
        reader.start()
        codec.send_all(a, kind(payload))
        codec.send_all(a, kind(b"tail"))
        reader.join(10)
        assert bytes(received) == expected
    finally:
        a.close()
        b.close()


def test_send_all_on_a_closed_peer_raises_oserror(codec):
    a, b = socket.socketpair()
    b.close()
    try:
        with pytest.raises(OSError):
            for _ in range(3):
                codec.send_all(a, b"x" * 100)
    finally:
        a.close()


def test_send_all_on_a_closed_socket_raises_oserror(codec):
    a, b = socket.socketpair()
    a.close()
    b.close()
    with pytest.raises(OSError):
        codec.send_all(a, b"x")
