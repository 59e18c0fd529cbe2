"""Decoders of the pure-Python codec: one reply record each.

Part of :mod:`fastzk._codec` (import the codec from there, whose
docstring gives the frame and error conventions), beside the compiled
twin's ``decoders.pxi``.
"""

import functools
import struct

from kazoo.protocol.states import ZnodeStat

from fastzk._codec import _primitives
from fastzk.errors import ProtocolError
from fastzk.protocol import constants as zk
from fastzk.protocol.constants import CHECK, CREATE, CREATE2, DELETE, SET_DATA

# The structs are assigned, not imported by name: CPython (3.11 to 3.13)
# compiles ``name.method(...)`` as a method call unless an import bound
# ``name``, and then as an attribute load making a bound method per call.
_I = _primitives._I
_Q = _primitives._Q

_IBI = struct.Struct("!iBi")  # MultiHeader: type, done, err
_REPLY = struct.Struct("!iqi")
_CONNECT_RESPONSE = struct.Struct("!iiqi")  # proto, timeout, sid, len
_II = struct.Struct("!ii")
_STAT = struct.Struct("!qqqqiiiqiiq")
_STAT_SIZE = zk.STAT_SIZE

_stat_new = functools.partial(tuple.__new__, ZnodeStat)


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
