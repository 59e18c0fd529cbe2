"""ZooKeeper wire codec, pure-Python implementation.

This module is the fallback of the compiled :mod:`fastzk._ccodec`; both
expose the same names with the same behaviour (the test suite runs against
each).  Use :mod:`fastzk._core` to get whichever one is active.

Encoders return one complete frame as :class:`bytes`: the 4-byte big-endian
length prefix, the request header (``int xid, int opcode``) where the
request has one, then the jute-serialised record.  Strings are encoded as
UTF-8; ``None`` encodes as the jute null (length -1).  An empty string
encodes as length 0, as jute and the Java client do (kazoo's own
serialisers send ``""`` as null).

Decoders take a *frame*, the body that follows the length prefix (as
:class:`bytes`, :class:`bytearray` or :class:`memoryview`), plus the offset
where the record starts (16, after the reply header, for replies).  They
raise :class:`fastzk.errors.ProtocolError` for truncated or malformed
input and never any other exception type for bad frame contents.
"""

import functools
import math
import operator
import select
import socket
import ssl
import struct
import time
from _socket import socket as _CSocket

from kazoo.exceptions import ConnectionDropped
from kazoo.protocol.states import ZnodeStat

from fastzk.errors import ProtocolError
from fastzk.protocol import constants as zk
from fastzk.protocol.constants import (  # re-exported (see __all__)
    ADD_WATCH,
    AUTH,
    AUTH_XID,
    CHECK,
    CHECK_WATCHES,
    CLOSE,
    CREATE,
    CREATE2,
    DELETE,
    EXISTS,
    GET_ACL,
    GET_CHILDREN,
    GET_CHILDREN2,
    GET_DATA,
    MULTI,
    PING,
    PING_XID,
    RECONFIG,
    REMOVE_WATCHES,
    SET_ACL,
    SET_DATA,
    SET_WATCHES,
    SET_WATCHES2,
    SET_WATCHES_XID,
    SYNC,
    WATCH_XID,
)

__all__ = [
    "IMPLEMENTATION",
    "send_all",
    "DEFAULT_MAX_FRAME",
    "CREATE",
    "DELETE",
    "EXISTS",
    "GET_DATA",
    "SET_DATA",
    "GET_ACL",
    "SET_ACL",
    "GET_CHILDREN",
    "SYNC",
    "PING",
    "GET_CHILDREN2",
    "CHECK",
    "MULTI",
    "CREATE2",
    "RECONFIG",
    "CHECK_WATCHES",
    "REMOVE_WATCHES",
    "AUTH",
    "SET_WATCHES",
    "SET_WATCHES2",
    "ADD_WATCH",
    "CLOSE",
    "WATCH_XID",
    "PING_XID",
    "AUTH_XID",
    "SET_WATCHES_XID",
    "FrameReader",
    "encode_connect",
    "encode_path_watch",
    "encode_path",
    "encode_create",
    "encode_delete",
    "encode_set_data",
    "encode_add_watch",
    "encode_remove_watches",
    "encode_set_watches",
    "encode_ping",
    "encode_close",
    "encode_raw",
    "decode_reply_header",
    "decode_connect_response",
    "decode_stat",
    "decode_data_stat",
    "decode_children",
    "decode_children_stat",
    "decode_string",
    "decode_string_stat",
    "decode_watch_event",
    "decode_multi",
]

#: Which implementation this module is: ``"python"`` or ``"cython"``.
IMPLEMENTATION = "python"

#: Largest frame body a :class:`FrameReader` accepts by default
#: (:data:`fastzk.protocol.constants.MAX_FRAME`).
DEFAULT_MAX_FRAME = zk.MAX_FRAME

_CREATE_OPCODES = frozenset((CREATE, CREATE2))

_I = struct.Struct("!i")
_Q = struct.Struct("!q")
_HDR = struct.Struct("!iii")  # length, xid, opcode
_HDR_I = struct.Struct("!iiii")  # length, xid, opcode, int
_IBI = struct.Struct("!iBi")  # MultiHeader: type, done, err
_CONNECT = struct.Struct("!iiqiqi")  # length, proto, zxid, timeout, sid, len
_REPLY = struct.Struct("!iqi")
_CONNECT_RESPONSE = struct.Struct("!iiqi")  # proto, timeout, sid, len
_II = struct.Struct("!ii")
_STAT = struct.Struct("!qqqqiiiqiiq")
_STAT_SIZE = zk.STAT_SIZE

_PING_FRAME = _HDR.pack(8, PING_XID, PING)

_stat_new = functools.partial(tuple.__new__, ZnodeStat)

# Initial capacity of a FrameReader's buffer and the free space it wants
# before a socket read.
_INITIAL_BUFFER = 256 * 1024
_MIN_READ = 64 * 1024

_HAS_POLL = hasattr(select, "poll")
_POLL_READ = (
    select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP
    if _HAS_POLL
    else 0
)
_POLLNVAL = getattr(select, "POLLNVAL", 0)
_POLL_WRITE = select.POLLOUT if _HAS_POLL else 1
_POLL_MAX_MS = 0x7FFFFFFF


# -- argument checking --------------------------------------------------------


def _bad_ints(*specs):
    """Raise the TypeError/ValueError explaining why an int did not pack.

    Called only after ``struct`` refused a value; ``specs`` holds
    ``(name, value, bits)`` triples.
    """
    for name, value, bits in specs:
        try:
            v = operator.index(value)
        except TypeError:
            raise TypeError(
                "%s must be an int, not %s" % (name, type(value).__name__)
            ) from None
        limit = 1 << (bits - 1)
        if not -limit <= v < limit:
            raise ValueError(
                "%s=%d does not fit in a signed %d-bit integer" % (name, v, bits)
            )
    raise ValueError("frame too large")


def _ustring(value, name="path"):
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError("%s must be str, not %s" % (name, type(value).__name__))


def _opt_ustring(value, name):
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError("%s must be str or None, not %s" % (name, type(value).__name__))


def _buffer(data, name="data"):
    if data is None or type(data) is bytes:
        return data
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(
            "%s must be bytes or None, not %s" % (name, type(data).__name__)
        ) from None
    with view:
        return view.tobytes()


def _w_string(out, raw):
    """Append a ustring/buffer already converted to bytes (None = null)."""
    if raw is None:
        out += b"\xff\xff\xff\xff"
    else:
        out += _I.pack(len(raw))
        out += raw


def _w_int(out, value, name):
    try:
        out += _I.pack(value)
    except struct.error:
        _bad_ints((name, value, 32))


def _w_long(out, value, name):
    try:
        out += _Q.pack(value)
    except struct.error:
        _bad_ints((name, value, 64))


def _w_acl(out, acl):
    """Append a vector<ACL> (``None`` is the null vector)."""
    if acl is None:
        out += b"\xff\xff\xff\xff"
        return
    if not isinstance(acl, (list, tuple)):
        try:
            acl = list(acl)
        except TypeError:
            raise TypeError(
                "acl must be a sequence of ACLs, not %s" % type(acl).__name__
            ) from None
    out += _I.pack(len(acl))
    for entry in acl:
        if isinstance(entry, tuple) and len(entry) == 3:
            perms, scheme, ident = entry
        else:
            try:
                perms = entry.perms
                scheme = entry.id.scheme
                ident = entry.id.id
            except AttributeError:
                raise TypeError(
                    "acl entries must be kazoo.security.ACL objects or "
                    "(perms, scheme, id) tuples, not %s" % type(entry).__name__
                ) from None
        _w_int(out, perms, "acl perms")
        _w_string(out, _opt_ustring(scheme, "acl scheme"))
        _w_string(out, _opt_ustring(ident, "acl id"))


def _finish(out, xid, opcode):
    """Fill in the length prefix and request header reserved at ``out[:12]``."""
    try:
        _HDR.pack_into(out, 0, len(out) - 4, xid, opcode)
    except struct.error:
        _bad_ints(("xid", xid, 32), ("opcode", opcode, 32))
    return bytes(out)


# -- encoders -----------------------------------------------------------------


def encode_connect(last_zxid, timeout_ms, session_id, passwd, read_only):
    """Encode a ConnectRequest frame (the handshake; no request header).

    :param last_zxid: the last zxid this client has seen (0 for a new
                      session).
    :param timeout_ms: the requested session timeout in milliseconds.
    :param session_id: the session to resume, 0 for a new one.
    :param passwd: the session password (bytes) or ``None``.
    :param read_only: whether a read-only server is acceptable.
    :returns: the frame, length prefix included.
    :rtype: bytes
    """
    pw = _buffer(passwd, "passwd")
    n = -1 if pw is None else len(pw)
    try:
        head = _CONNECT.pack(
            29 + max(n, 0), 0, last_zxid, timeout_ms, session_id, n
        )
    except struct.error:
        _bad_ints(
            ("last_zxid", last_zxid, 64),
            ("timeout_ms", timeout_ms, 32),
            ("session_id", session_id, 64),
        )
    if pw:
        head += pw
    return head + (b"\x01" if read_only else b"\x00")


def encode_path_watch(xid, opcode, path, watch):
    """Encode a request made of ``ustring path, bool watch``.

    Used by exists, getData, getChildren and getChildren2.

    :param xid: the request's xid.
    :param opcode: :data:`EXISTS`, :data:`GET_DATA`, :data:`GET_CHILDREN`
                   or :data:`GET_CHILDREN2`.
    :param path: the znode path (str).
    :param watch: whether to leave a watch.
    :rtype: bytes
    """
    p = _ustring(path)
    n = len(p)
    try:
        head = _HDR_I.pack(13 + n, xid, opcode, n)
    except struct.error:
        _bad_ints(("xid", xid, 32), ("opcode", opcode, 32))
    return head + p + (b"\x01" if watch else b"\x00")


def encode_path(xid, opcode, path):
    """Encode a request made of a single ``ustring path`` (sync, getACL).

    :rtype: bytes
    """
    p = _ustring(path)
    n = len(p)
    try:
        head = _HDR_I.pack(12 + n, xid, opcode, n)
    except struct.error:
        _bad_ints(("xid", xid, 32), ("opcode", opcode, 32))
    return head + p


def _path_int(xid, opcode, path, value, name):
    p = _ustring(path)
    n = len(p)
    try:
        return b"".join(
            (_HDR_I.pack(16 + n, xid, opcode, n), p, _I.pack(value))
        )
    except struct.error:
        _bad_ints(("xid", xid, 32), ("opcode", opcode, 32), (name, value, 32))


def encode_create(xid, opcode, path, data, acl, flags):
    """Encode a create request.

    ``CreateRequest`` is ``ustring path, buffer data, vector<ACL> acl, int
    flags``.

    :param xid: the request's xid.
    :param opcode: :data:`CREATE` or :data:`CREATE2` (same request, the
                   latter's reply carries the new node's Stat).
    :param path: the znode path (str).
    :param data: the node's data (bytes) or ``None``.
    :param acl: a sequence of :class:`kazoo.security.ACL` or
                ``(perms, scheme, id)`` tuples.
    :param flags: the create mode (0 persistent, 1 ephemeral, ...).
    :rtype: bytes
    """
    if opcode not in _CREATE_OPCODES:
        if not isinstance(opcode, int):
            _bad_ints(("opcode", opcode, 32))
        raise ValueError("opcode %r is not a create opcode" % (opcode,))
    out = bytearray(12)
    _w_string(out, _ustring(path))
    _w_string(out, _buffer(data))
    _w_acl(out, acl)
    _w_int(out, flags, "flags")
    return _finish(out, xid, opcode)


def encode_delete(xid, path, version):
    """Encode a DeleteRequest (``ustring path, int version``).

    :rtype: bytes
    """
    return _path_int(xid, DELETE, path, version, "version")


def encode_set_data(xid, path, data, version):
    """Encode a SetDataRequest (``ustring path, buffer data, int version``).

    :rtype: bytes
    """
    p = _ustring(path)
    d = _buffer(data)
    n = len(p)
    if d is None:
        dn = -1
        d = b""
    else:
        dn = len(d)
    try:
        return b"".join(
            (
                _HDR_I.pack(20 + n + len(d), xid, SET_DATA, n),
                p,
                _I.pack(dn),
                d,
                _I.pack(version),
            )
        )
    except struct.error:
        _bad_ints(("xid", xid, 32), ("version", version, 32))


def encode_add_watch(xid, path, mode):
    """Encode an AddWatchRequest (``ustring path, int mode``).

    :param mode: 0 persistent, 1 persistent recursive.
    :rtype: bytes
    """
    return _path_int(xid, ADD_WATCH, path, mode, "mode")


def encode_remove_watches(xid, path, watcher_type):
    """Encode a RemoveWatchesRequest (``ustring path, int type``).

    :param watcher_type: 1 children, 2 data, 3 any.
    :rtype: bytes
    """
    return _path_int(xid, REMOVE_WATCHES, path, watcher_type, "watcher_type")


def _set_watches_frame(relative_zxid, batch):
    persistent = bool(batch[3] or batch[4])
    out = bytearray(12)
    _w_long(out, relative_zxid, "relative_zxid")
    for paths in batch if persistent else batch[:3]:
        out += _I.pack(len(paths))
        for raw in paths:
            out += _I.pack(len(raw))
            out += raw
    opcode = SET_WATCHES2 if persistent else SET_WATCHES
    _HDR.pack_into(out, 0, len(out) - 4, SET_WATCHES_XID, opcode)
    return bytes(out)


def encode_set_watches(
    relative_zxid,
    data_paths,
    exist_paths,
    child_paths,
    persistent_paths=(),
    recursive_paths=(),
):
    """Encode the SetWatches frames that restore watches on a new connection.

    A frame whose batch holds no persistent paths is a SetWatches (opcode
    :data:`SET_WATCHES`: ``long relativeZxid`` and three
    ``vector<ustring>``); otherwise a SetWatches2 (:data:`SET_WATCHES2`,
    two more vectors).  All use xid :data:`SET_WATCHES_XID`.  The paths are
    split into batches of at most 128 KiB of encoded paths (a longer single
    path travels alone), in the order data, exist, child, persistent,
    recursive, as the Java client does.

    :param relative_zxid: the last zxid seen; the server fires the
                          one-shot watches whose node changed after it.
    :returns: the frames, empty when there are no paths.
    :rtype: list[bytes]
    """
    try:
        _Q.pack(relative_zxid)
    except struct.error:
        _bad_ints(("relative_zxid", relative_zxid, 64))
    lists = [
        [_ustring(p, "watch path") for p in paths]
        for paths in (
            data_paths,
            exist_paths,
            child_paths,
            persistent_paths,
            recursive_paths,
        )
    ]
    frames = []
    batch = [[], [], [], [], []]
    size = 0
    for index, paths in enumerate(lists):
        for raw in paths:
            cost = 4 + len(raw)
            if size and size + cost > zk.SET_WATCHES_MAX:
                frames.append(_set_watches_frame(relative_zxid, batch))
                batch = [[], [], [], [], []]
                size = 0
            batch[index].append(raw)
            size += cost
    if size:
        frames.append(_set_watches_frame(relative_zxid, batch))
    return frames


def encode_ping():
    """Encode a ping (xid :data:`PING_XID`, opcode :data:`PING`, no body).

    :rtype: bytes
    """
    return _PING_FRAME


def encode_close(xid):
    """Encode a closeSession request (opcode :data:`CLOSE`, no body).

    :rtype: bytes
    """
    try:
        return _HDR.pack(8, xid, CLOSE)
    except struct.error:
        _bad_ints(("xid", xid, 32))


def encode_raw(xid, opcode, body):
    """Encode a request from an already-serialised record.

    :param body: the record, e.g. from a kazoo request's ``serialize()``.
    :rtype: bytes
    """
    b = _buffer(body, "body")
    if b is None:
        raise TypeError("body must be bytes, not None")
    try:
        return _HDR.pack(8 + len(b), xid, opcode) + b
    except struct.error:
        _bad_ints(("xid", xid, 32), ("opcode", opcode, 32))


# -- decoders -----------------------------------------------------------------


def _frame(frame):
    """Return ``frame`` as bytes (copying other buffers)."""
    if type(frame) is bytes:
        return frame
    with memoryview(frame) as view:
        return view.tobytes()


def _truncated(what, pos, need, n):
    return ProtocolError(
        "truncated %s: %d bytes needed at offset %d of a %d-byte frame"
        % (what, need, pos, n)
    )


def _start(offset, n):
    if offset < 0:
        raise ValueError("offset must be >= 0, not %d" % offset)
    if offset > n:
        raise ProtocolError(
            "offset %d is past the end of a %d-byte frame" % (offset, n)
        )
    return offset


def _read_len(frame, pos, n, what):
    if pos + 4 > n:
        raise _truncated(what, pos, 4, n)
    (length,) = _I.unpack_from(frame, pos)
    pos += 4
    if length < 0:
        if length == -1:
            return -1, pos
        raise ProtocolError("negative %s length %d at offset %d" % (what, length, pos - 4))
    if pos + length > n:
        raise _truncated(what, pos, length, n)
    return length, pos


def _read_str(frame, pos, n):
    length, pos = _read_len(frame, pos, n, "string")
    if length < 0:
        return None, pos
    end = pos + length
    try:
        return frame[pos:end].decode("utf-8"), end
    except UnicodeDecodeError:
        raise ProtocolError("invalid UTF-8 in string at offset %d" % pos) from None


def _read_buffer(frame, pos, n):
    length, pos = _read_len(frame, pos, n, "buffer")
    if length < 0:
        return None, pos
    end = pos + length
    return bytes(frame[pos:end]), end


def _read_stat(frame, pos, n):
    if pos + _STAT_SIZE > n:
        raise _truncated("Stat", pos, _STAT_SIZE, n)
    return _stat_new(_STAT.unpack_from(frame, pos)), pos + _STAT_SIZE


def _read_strings(frame, pos, n):
    if pos + 4 > n:
        raise _truncated("vector", pos, 4, n)
    (count,) = _I.unpack_from(frame, pos)
    pos += 4
    if count < 0:
        if count == -1:
            return [], pos
        raise ProtocolError("negative vector length %d at offset %d" % (count, pos - 4))
    if count > (n - pos) >> 2:
        raise _truncated("vector", pos, count * 4, n)
    out = []
    append = out.append
    unpack = _I.unpack_from
    for _ in range(count):
        if pos + 4 > n:
            raise _truncated("string", pos, 4, n)
        (length,) = unpack(frame, pos)
        pos += 4
        if length < 0:
            if length != -1:
                raise ProtocolError(
                    "negative string length %d at offset %d" % (length, pos - 4)
                )
            append(None)
            continue
        end = pos + length
        if end > n:
            raise _truncated("string", pos, length, n)
        try:
            append(frame[pos:end].decode("utf-8"))
        except UnicodeDecodeError:
            raise ProtocolError("invalid UTF-8 in string at offset %d" % pos) from None
        pos = end
    return out, pos


def decode_reply_header(frame):
    """Decode a ReplyHeader at the start of ``frame``.

    :returns: ``(xid, zxid, err)``; the record follows at offset 16.
    :raises ProtocolError: if the frame is shorter than 16 bytes.
    """
    try:
        return _REPLY.unpack_from(frame, 0)
    except struct.error:
        raise _truncated(
            "reply header", 0, 16, memoryview(frame).nbytes
        ) from None


def decode_connect_response(frame):
    """Decode a ConnectResponse frame (the handshake reply).

    :returns: ``(protocol_version, timeout_ms, session_id, passwd,
              read_only)``; ``read_only`` is ``False`` when the server
              omits it (servers before 3.4).
    """
    if type(frame) is not bytes:
        frame = _frame(frame)
    n = len(frame)
    if n < 20:
        raise _truncated("ConnectResponse", 0, 20, n)
    proto, timeout, session_id = _II.unpack_from(frame, 0) + _Q.unpack_from(frame, 8)
    passwd, pos = _read_buffer(frame, 16, n)
    read_only = pos < n and frame[pos] != 0
    return proto, timeout, session_id, passwd, read_only


def decode_stat(frame, offset):
    """Decode a Stat at ``offset``.

    :rtype: :class:`kazoo.protocol.states.ZnodeStat`
    """
    if offset < 0:
        raise ValueError("offset must be >= 0, not %d" % offset)
    try:
        return _stat_new(_STAT.unpack_from(frame, offset))
    except struct.error:
        raise _truncated(
            "Stat", offset, _STAT_SIZE, memoryview(frame).nbytes
        ) from None


def decode_data_stat(frame, offset):
    """Decode a GetDataResponse (``buffer data, Stat stat``).

    :returns: ``(data, stat)``; ``data`` is bytes or ``None``.
    """
    if type(frame) is not bytes:
        frame = _frame(frame)
    n = len(frame)
    if 0 <= offset <= n - 4:
        # fast path for well-formed replies
        (length,) = _I.unpack_from(frame, offset)
        pos = offset + 4
        if length >= 0:
            end = pos + length
            if end <= n - _STAT_SIZE:
                return frame[pos:end], _stat_new(_STAT.unpack_from(frame, end))
        elif length == -1 and pos <= n - _STAT_SIZE:
            return None, _stat_new(_STAT.unpack_from(frame, pos))
    data, pos = _read_buffer(frame, _start(offset, n), n)
    return data, _read_stat(frame, pos, n)[0]


def decode_children(frame, offset):
    """Decode a GetChildrenResponse (``vector<ustring> children``).

    :returns: the child names (a null vector gives ``[]``).
    :rtype: list[str]
    """
    if type(frame) is not bytes:
        frame = _frame(frame)
    n = len(frame)
    return _read_strings(frame, _start(offset, n), n)[0]


def decode_children_stat(frame, offset):
    """Decode a GetChildren2Response (``vector<ustring> children, Stat``).

    :returns: ``(children, stat)``.
    """
    if type(frame) is not bytes:
        frame = _frame(frame)
    n = len(frame)
    children, pos = _read_strings(frame, _start(offset, n), n)
    return children, _read_stat(frame, pos, n)[0]


def decode_string(frame, offset):
    """Decode a single ustring (CreateResponse, SyncResponse).

    :returns: the string, or ``None`` for a null string.
    """
    if type(frame) is not bytes:
        frame = _frame(frame)
    n = len(frame)
    return _read_str(frame, _start(offset, n), n)[0]


def decode_string_stat(frame, offset):
    """Decode a Create2Response (``ustring path, Stat stat``).

    :returns: ``(path, stat)``.
    """
    if type(frame) is not bytes:
        frame = _frame(frame)
    n = len(frame)
    path, pos = _read_str(frame, _start(offset, n), n)
    return path, _read_stat(frame, pos, n)[0]


def decode_watch_event(frame, offset):
    """Decode a WatcherEvent (``int type, int state, ustring path``).

    :returns: ``(type, state, path)``.
    """
    if type(frame) is not bytes:
        frame = _frame(frame)
    n = len(frame)
    pos = _start(offset, n)
    if pos + 8 > n:
        raise _truncated("WatcherEvent", pos, 8, n)
    event_type, state = _II.unpack_from(frame, pos)
    path = _read_str(frame, pos + 8, n)[0]
    return event_type, state, path


def decode_multi(frame, offset):
    """Decode a MultiResponse.

    Each result is a MultiHeader ``{int type, bool done, int err}`` and a
    body chosen by ``type``; a header with ``done`` set ends the list.

    :returns: a list of ``(opcode, value)``: ``(CREATE, path)``,
              ``(CREATE2, (path, stat))``, ``(SET_DATA, stat)``,
              ``(DELETE, None)``, ``(CHECK, None)`` or ``(-1, err)`` for a
              failed operation (-1 is ZooKeeper's ``error`` opcode;
              ``err`` the ZooKeeper error code).
    :raises ProtocolError: for a truncated list or an unknown result type.
    """
    if type(frame) is not bytes:
        frame = _frame(frame)
    n = len(frame)
    pos = _start(offset, n)
    results = []
    append = results.append
    while True:
        if pos + 9 > n:
            raise _truncated("MultiHeader", pos, 9, n)
        op, done, _err = _IBI.unpack_from(frame, pos)
        pos += 9
        if done:
            return results
        if op == CREATE:
            path, pos = _read_str(frame, pos, n)
            append((CREATE, path))
        elif op == CREATE2:
            path, pos = _read_str(frame, pos, n)
            stat, pos = _read_stat(frame, pos, n)
            append((CREATE2, (path, stat)))
        elif op == SET_DATA:
            stat, pos = _read_stat(frame, pos, n)
            append((SET_DATA, stat))
        elif op == DELETE or op == CHECK:
            append((op, None))
        elif op == zk.ERROR:
            if pos + 4 > n:
                raise _truncated("ErrorResponse", pos, 4, n)
            append((zk.ERROR, _I.unpack_from(frame, pos)[0]))
            pos += 4
        else:
            raise ProtocolError(
                "unknown multi result type %d at offset %d" % (op, pos - 9)
            )


# -- frame reader ---------------------------------------------------------------


def send_all(sock, data):
    """Send all of ``data`` (a bytes-like object) on ``sock``.

    ``sock.sendall``; the compiled core first tries a non-blocking send
    without releasing the GIL.

    :raises OSError: as ``socket.sendall`` does.
    """
    sock.sendall(data)


class FrameReader(object):
    """Split a byte stream into ZooKeeper frames.

    Keeps a growable receive buffer: bytes come in through :meth:`feed` or
    :meth:`read_from` and whole frames go out through :meth:`next_frame`.
    Not thread-safe: one thread at a time may use a reader.

    :param max_frame: the largest frame body accepted; a bigger (or
                      negative) length prefix raises
                      :class:`~fastzk.errors.ProtocolError`.
    """

    __slots__ = ("max_frame", "_buf", "_view", "_start", "_end", "_poller", "_busy")

    #: Off-CPU nanoseconds of the last busy-poll: always 0, this
    #: implementation never busy-polls.
    spin_off_cpu_ns = 0

    def __init__(self, max_frame=DEFAULT_MAX_FRAME):
        max_frame = operator.index(max_frame)
        if max_frame < 0 or max_frame > 0x7FFFFFFF:
            raise ValueError("max_frame must be in [0, 2**31 - 1]")
        self.max_frame = max_frame
        self._buf = bytearray(_INITIAL_BUFFER)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0
        self._poller = None  # (fd, select.poll object)
        self._busy = False

    def buffered(self):
        """Return the number of bytes received but not yet returned as frames.

        :rtype: int
        """
        return self._end - self._start

    def _reserve(self, want):
        """Make room for ``want`` more bytes after ``_end``."""
        if self._busy:
            raise RuntimeError("FrameReader used by two threads at once")
        cap = len(self._buf)
        if cap - self._end >= want:
            return
        pending = self._end - self._start
        if pending + want <= cap:
            # Slide the partial frame to the front (it is smaller than a frame,
            # and this happens at most once per buffer's worth of traffic).
            view = self._view
            view[:pending] = view[self._start : self._end]
        else:
            size = cap
            while size < pending + want:
                size *= 2
            buf = bytearray(size)
            buf[:pending] = self._view[self._start : self._end]
            self._view.release()
            self._buf = buf
            self._view = memoryview(buf)
        self._start = 0
        self._end = pending

    def feed(self, data):
        """Append ``data`` (a bytes-like object) to the buffer."""
        with memoryview(data) as view:
            if view.format != "B" or view.ndim != 1:
                view = view.cast("B")
            n = len(view)
            self._reserve(n)
            end = self._end
            self._view[end : end + n] = view
            self._end = end + n

    def next_frame(self):
        """Return the next complete frame body, or ``None`` if incomplete.

        :rtype: bytes or None
        :raises ProtocolError: for a negative or too large length prefix.
        """
        start = self._start
        avail = self._end - start
        if avail < 4:
            return None
        (length,) = _I.unpack_from(self._buf, start)
        if length < 0 or length > self.max_frame:
            raise ProtocolError(
                "invalid frame length %d (max %d)" % (length, self.max_frame)
            )
        if avail < 4 + length:
            return None
        stop = start + 4 + length
        frame = bytes(self._view[start + 4 : stop])
        if stop == self._end:
            self._start = self._end = 0
        else:
            self._start = stop
        return frame

    def _want(self):
        """How many free bytes a socket read should have room for."""
        avail = self._end - self._start
        if avail >= 4:
            (length,) = _I.unpack_from(self._buf, self._start)
            if 0 <= length <= self.max_frame and 4 + length - avail > _MIN_READ:
                return 4 + length - avail
        return _MIN_READ

    def _wait(self, fd, timeout_ms):
        """Poll ``fd`` for input; True when readable (or in error)."""
        if _HAS_POLL:
            poller = self._poller
            if poller is None or poller[0] != fd:
                p = select.poll()
                p.register(fd, _POLL_READ)
                self._poller = poller = (fd, p)
            events = poller[1].poll(timeout_ms)
            if events and events[0][1] & _POLLNVAL:
                raise ConnectionDropped("socket is closed")
            return bool(events)
        r, _, x = select.select(
            [fd], [], [fd], None if timeout_ms < 0 else timeout_ms / 1000.0
        )
        return bool(r or x)

    def read_from(self, sock, timeout, spin_us=0):
        """Read whatever ``sock`` has into the buffer.

        Waits at most ``timeout`` seconds (``None``: forever) for at least
        one byte.  A plain socket may be blocking or not; its mode is left
        alone.

        An :class:`ssl.SSLSocket` must be non-blocking (its ``recv_into``
        raising :exc:`ssl.SSLWantReadError` when no whole record is in, as
        :class:`fastzk.drivers.tls.TlsSocket` does): it is read through its
        ``recv_into``, and polled only when its ``pending()`` says the TLS
        layer holds no decrypted bytes.

        :param spin_us: how long the compiled implementation busy-polls
                        a plain socket before blocking; this one cannot
                        release the GIL to spin, and ignores it.
        :returns: the number of bytes read, 0 on timeout.
        :rtype: int
        :raises kazoo.exceptions.ConnectionDropped: when the server closed
                the connection or the socket failed.
        :raises ssl.SSLError: the TLS layer failed (an alert from the
                server, for one).
        :raises TypeError: when ``sock`` is not a :class:`socket.socket`.
        """
        if not isinstance(sock, _CSocket):
            raise TypeError("sock must be a socket.socket, not %s"
                            % type(sock).__name__)
        self._reserve(self._want())
        self._busy = True
        try:
            if isinstance(sock, ssl.SSLSocket):
                return self._read_tls(sock, timeout)
            return self._read(sock, timeout)
        finally:
            self._busy = False

    def _read_tls(self, sock, timeout):
        if timeout is None or timeout >= 1e9:
            deadline = None
        else:
            deadline = time.monotonic() + (timeout if timeout > 0 else 0.0)
        events = _POLL_READ
        with self._view[self._end :] as view:
            while True:
                if not sock.pending():
                    fd = sock.fileno()
                    if fd < 0:
                        raise ConnectionDropped("socket is closed")
                    if not self._wait_tls(fd, events, deadline):
                        return 0
                try:
                    n = sock.recv_into(view)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError) as exc:
                    # Part of a record, or the TLS layer must write first.
                    events = _POLL_READ
                    if isinstance(exc, ssl.SSLWantWriteError):
                        events |= _POLL_WRITE
                    if deadline is not None and time.monotonic() >= deadline:
                        return 0
                    continue
                except ssl.SSLZeroReturnError:
                    raise ConnectionDropped("connection closed by server")
                if n == 0:
                    raise ConnectionDropped("connection closed by server")
                self._end += n
                return n

    @staticmethod
    def _wait_tls(fd, events, deadline):
        """Wait until ``fd`` has ``events`` (poll flags): True, or False at
        ``deadline`` (a :func:`time.monotonic` value, None: none)."""
        while True:
            if deadline is None:
                ms = -1
            else:
                ms = min(_POLL_MAX_MS, max(
                    0, math.ceil((deadline - time.monotonic()) * 1000.0)))
            if _HAS_POLL:
                poller = select.poll()
                poller.register(fd, events)
                ready = poller.poll(ms)
                if ready and ready[0][1] & _POLLNVAL:
                    raise ConnectionDropped("socket is closed")
            else:
                wait = None if ms < 0 else ms / 1000.0
                writers = [fd] if events & _POLL_WRITE else []
                ready = any(select.select([fd], writers, [fd], wait))
            if ready:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def _read(self, sock, timeout):
        if timeout is None or timeout >= 1e9:
            deadline = None
        else:
            deadline = time.monotonic() + (timeout if timeout > 0 else 0.0)
        try:
            fd = sock.fileno()
        except OSError as exc:
            raise ConnectionDropped("socket error: %s" % (exc,)) from exc
        if fd < 0:
            raise ConnectionDropped("socket is closed")
        with self._view[self._end :] as view:
            while True:
                if deadline is None:
                    ms = -1
                else:
                    ms = min(
                        _POLL_MAX_MS,
                        max(0, math.ceil((deadline - time.monotonic()) * 1000.0)),
                    )
                if not self._wait(fd, ms):
                    if deadline is None or time.monotonic() < deadline:
                        continue
                    return 0
                try:
                    n = sock.recv_into(view)
                except (BlockingIOError, InterruptedError, socket.timeout):
                    if deadline is not None and time.monotonic() >= deadline:
                        return 0
                    continue
                except (OSError, ValueError) as exc:
                    raise ConnectionDropped("socket error: %s" % (exc,)) from exc
                if n == 0:
                    raise ConnectionDropped("connection closed by server")
                self._end += n
                return n
