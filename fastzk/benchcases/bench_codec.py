"""Encoding requests and decoding replies: kazoo, fastzk (Cython), fastzk
(pure Python).

Each round encodes or decodes one whole frame the way the client does on
the wire path:

- kazoo: build the request namedtuple, ``serialize()``, prepend xid, type
  and length (``ConnectionHandler._submit``); replies: ``ReplyHeader`` then
  the request class's ``deserialize`` (``_read_response``), ``Watch`` for
  events.
- fastzk: the core's ``encode_*`` (length prefix included) and
  ``decode_reply_header`` + ``decode_*``.

No server is needed.  ``fastzk`` is the compiled core, ``fastzk-python``
the pure-Python module of the same API, both imported directly (whatever
``FASTZK_NO_EXTENSIONS`` says).
"""

import struct

import pytest

from kazoo.protocol import serialization as kz
from kazoo.security import OPEN_ACL_UNSAFE

from fastzk.benchcases import _benchlib as lib
from fastzk import _codec as py_codec

try:
    from fastzk import _ccodec as c_codec
except ImportError:  # not built
    c_codec = None  # type: ignore[assignment]

CODEC_IMPLS = ("kazoo", "fastzk", "fastzk-python")

_INT = struct.Struct("!i")
STAT = struct.pack("!qqqqiiiqiiq", 10, 11, 1700000000000, 1700000000001,
                   3, 4, 0, 0, 100, 50, 12)
HEADER = struct.pack("!iqi", 7, 123456, 0)


def _string(s):
    b = s.encode("utf-8")
    return struct.pack("!i", len(b)) + b


PATH = "/fastzk/benchmark/some/node"
CHILDREN = ["node-%010d" % i for i in range(50)]
CHILDREN_REPLY = HEADER + struct.pack("!i", 50) + b"".join(map(_string, CHILDREN))
DATA_REPLY = HEADER + struct.pack("!i", 100) + b"x" * 100 + STAT
STAT_REPLY = HEADER + STAT
CREATE_REPLY = HEADER + _string(PATH + "/" + "a" * 32 + "__lock__0000001234")
EVENT_REPLY = struct.pack("!iqi", -1, -1, 0) + struct.pack("!ii", 3, 3) + _string(PATH)
DATA = b"x" * 100
LOCK_PATH = PATH + "/" + "a" * 32 + "__lock__"


def _kazoo_frame(request, xid):
    b = bytearray()
    b.extend(_INT.pack(xid))
    b.extend(_INT.pack(request.type))
    b += request.serialize()
    return _INT.pack(len(b)) + b


def kazoo_cases():
    frame = _kazoo_frame
    read_header = kz.ReplyHeader.deserialize

    def decode(cls):
        des = cls.deserialize

        def run(buf):
            header, offset = read_header(buf, 0)
            return des(buf, offset)
        return run

    def decode_event(buf):
        header, offset = read_header(buf, 0)
        return kz.Watch.deserialize(buf, offset)

    return {
        "encode getChildren": lambda: frame(kz.GetChildren(PATH, True), 7),
        "encode getData": lambda: frame(kz.GetData(PATH, None), 7),
        "encode create (ephemeral sequential)": lambda: frame(
            kz.Create(LOCK_PATH, b"worker-1", OPEN_ACL_UNSAFE, 3), 7),
        "encode setData (100 B)": lambda: frame(kz.SetData(PATH, DATA, -1), 7),
        "decode getChildren reply (50 names)": (
            decode(kz.GetChildren), CHILDREN_REPLY),
        "decode getData reply (100 B + Stat)": (decode(kz.GetData), DATA_REPLY),
        "decode setData reply (Stat)": (decode(kz.SetData), STAT_REPLY),
        "decode create reply": (decode(kz.Create), CREATE_REPLY),
        "decode watch event": (decode_event, EVENT_REPLY),
    }


def fastzk_cases(codec):
    read_header = codec.decode_reply_header

    def decode(func):
        def run(buf):
            read_header(buf)
            return func(buf, 16)
        return run

    enc_pw = codec.encode_path_watch
    enc_create = codec.encode_create
    enc_set = codec.encode_set_data
    gc_op, gd_op, cr_op = codec.GET_CHILDREN, codec.GET_DATA, codec.CREATE
    return {
        "encode getChildren": lambda: enc_pw(7, gc_op, PATH, True),
        "encode getData": lambda: enc_pw(7, gd_op, PATH, False),
        "encode create (ephemeral sequential)": lambda: enc_create(
            7, cr_op, LOCK_PATH, b"worker-1", OPEN_ACL_UNSAFE, 3),
        "encode setData (100 B)": lambda: enc_set(7, PATH, DATA, -1),
        "decode getChildren reply (50 names)": (
            decode(codec.decode_children), CHILDREN_REPLY),
        "decode getData reply (100 B + Stat)": (
            decode(codec.decode_data_stat), DATA_REPLY),
        "decode setData reply (Stat)": (decode(codec.decode_stat), STAT_REPLY),
        "decode create reply": (decode(codec.decode_string), CREATE_REPLY),
        "decode watch event": (decode(codec.decode_watch_event), EVENT_REPLY),
    }


CASES = list(kazoo_cases())


def _cases_for(impl):
    if impl == "kazoo":
        return kazoo_cases()
    if impl == "fastzk":
        if c_codec is None:
            pytest.skip("fastzk._ccodec is not built (python setup.py "
                        "build_ext --inplace)")
        return fastzk_cases(c_codec)
    return fastzk_cases(py_codec)


# Operations per timed call: enough to swamp the call overhead of the
# benchmark fixture itself.
_LOOP = 200


@pytest.mark.parametrize("impl", CODEC_IMPLS)
@pytest.mark.parametrize("case", CASES)
def test_codec(benchmark, case, impl):
    spec = _cases_for(impl)[case]
    if isinstance(spec, tuple):
        func, buf = spec
        # Sanity: the decoders must accept the frame.
        func(buf)

        def run(func=func, buf=buf, rng=range(_LOOP)):
            for _ in rng:
                func(buf)
    else:
        func = spec
        func()

        def run(func=func, rng=range(_LOOP)):  # type: ignore[misc]
            for _ in rng:
                func()

    benchmark.group = "codec: " + case
    benchmark(run)
    lib.record(benchmark, "codec." + case, impl, ops_per_round=_LOOP)


def test_codec_encodings_agree():
    """The fastzk encoders produce the bytes kazoo produces (so the timings
    compare the same work)."""
    kazoo = kazoo_cases()
    for codec in filter(None, (c_codec, py_codec)):
        ours = fastzk_cases(codec)
        for case, spec in kazoo.items():
            if case.startswith("encode"):
                assert bytes(ours[case]()) == bytes(spec()), case
