"""Encoders of the pure-Python codec: one request frame each.

Part of :mod:`fastzk._codec` (import the codec from there, whose
docstring gives the frame conventions), beside the compiled twin's
``encoders.pxi``.
"""

import struct

from fastzk._codec import _primitives
from fastzk._codec._primitives import (
    _bad_ints,
    _buffer,
    _finish,
    _ustring,
    _w_acl,
    _w_int,
    _w_long,
    _w_string,
)
from fastzk.protocol import constants as zk
from fastzk.protocol.constants import (
    ADD_WATCH,
    CLOSE,
    CREATE,
    CREATE2,
    DELETE,
    PING,
    PING_XID,
    REMOVE_WATCHES,
    SET_DATA,
    SET_WATCHES,
    SET_WATCHES2,
    SET_WATCHES_XID,
)

# The structs are assigned, not imported by name: CPython (3.11 to 3.13)
# compiles ``name.method(...)`` as a method call unless an import bound
# ``name``, and then as an attribute load making a bound method per call.
_HDR = _primitives._HDR
_I = _primitives._I
_Q = _primitives._Q

_CREATE_OPCODES = frozenset((CREATE, CREATE2))

_HDR_I = struct.Struct("!iiii")  # length, xid, opcode, int
_CONNECT = struct.Struct("!iiqiqi")  # length, proto, zxid, timeout, sid, len

_PING_FRAME = _HDR.pack(8, PING_XID, PING)


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
