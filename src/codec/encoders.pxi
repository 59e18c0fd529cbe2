# Part of the compiled codec, included by src/_ccodec.pyx (text, not a
# module): the encode_* functions, each returning one whole request frame
# (length prefix included).  Built on the helpers of primitives.pxi.

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
    cdef bytes pw = _as_bytes(passwd, b"passwd")
    cdef int64_t zxid = _i64(last_zxid, b"last_zxid")
    cdef int32_t tmo = _i32(timeout_ms, b"timeout_ms")
    cdef int64_t sid = _i64(session_id, b"session_id")
    cdef Py_ssize_t n = -1 if pw is None else PyBytes_GET_SIZE(pw)
    cdef Py_ssize_t pn = 0 if n < 0 else n
    cdef unsigned char flag = 1 if read_only else 0
    _check_frame_len(29 + pn)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 33 + pn)
    cdef unsigned char *w = <unsigned char *>PyBytes_AS_STRING(out)
    _put32(w, <uint32_t>(29 + pn))
    _put32(w + 4, 0)
    _put64(w + 8, <uint64_t>zxid)
    _put32(w + 16, <uint32_t>tmo)
    _put64(w + 20, <uint64_t>sid)
    _put32(w + 28, <uint32_t>n)
    if pn:
        memcpy(w + 32, PyBytes_AS_STRING(pw), pn)
    w[32 + pn] = flag
    return out


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
    cdef Py_ssize_t n = 0
    cdef const char *s = _ustr(path, &n, b"path")
    cdef int32_t x = _i32(xid, b"xid")
    cdef int32_t op = _i32(opcode, b"opcode")
    cdef unsigned char flag = 1 if watch else 0
    _check_frame_len(13 + n)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 17 + n)
    cdef unsigned char *w = <unsigned char *>PyBytes_AS_STRING(out)
    _put32(w, <uint32_t>(13 + n))
    _put32(w + 4, <uint32_t>x)
    _put32(w + 8, <uint32_t>op)
    _put32(w + 12, <uint32_t>n)
    memcpy(w + 16, s, n)
    w[16 + n] = flag
    return out


def encode_path(xid, opcode, path):
    """Encode a request made of a single ``ustring path`` (sync, getACL).

    :rtype: bytes
    """
    cdef Py_ssize_t n = 0
    cdef const char *s = _ustr(path, &n, b"path")
    cdef int32_t x = _i32(xid, b"xid")
    cdef int32_t op = _i32(opcode, b"opcode")
    _check_frame_len(12 + n)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 16 + n)
    cdef unsigned char *w = <unsigned char *>PyBytes_AS_STRING(out)
    _put32(w, <uint32_t>(12 + n))
    _put32(w + 4, <uint32_t>x)
    _put32(w + 8, <uint32_t>op)
    _put32(w + 12, <uint32_t>n)
    memcpy(w + 16, s, n)
    return out


cdef bytes _path_int(object xid, int32_t opcode, object path, object value,
                     const char *name):
    cdef Py_ssize_t n = 0
    cdef const char *s = _ustr(path, &n, b"path")
    cdef int32_t x = _i32(xid, b"xid")
    cdef int32_t v = _i32(value, name)
    _check_frame_len(16 + n)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 20 + n)
    cdef unsigned char *w = <unsigned char *>PyBytes_AS_STRING(out)
    _put32(w, <uint32_t>(16 + n))
    _put32(w + 4, <uint32_t>x)
    _put32(w + 8, <uint32_t>opcode)
    _put32(w + 12, <uint32_t>n)
    memcpy(w + 16, s, n)
    _put32(w + 16 + n, <uint32_t>v)
    return out


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
    cdef int32_t op = _i32(opcode, b"opcode")
    if op != zk.CREATE and op != zk.CREATE2:
        raise ValueError("opcode %r is not a create opcode" % (opcode,))
    cdef int32_t x
    cdef _Writer w
    _w_init(&w)
    try:
        w.len = 12
        _w_path(&w, path, b"path")
        _w_data(&w, data, b"data")
        _w_acl(&w, acl)
        _w_i32(&w, _i32(flags, b"flags"))
        x = _i32(xid, b"xid")
        return _w_finish(&w, x, op)
    finally:
        _w_free(&w)


def encode_delete(xid, path, version):
    """Encode a DeleteRequest (``ustring path, int version``).

    :rtype: bytes
    """
    return _path_int(xid, zk.DELETE, path, version, b"version")


def encode_set_data(xid, path, data, version):
    """Encode a SetDataRequest (``ustring path, buffer data, int version``).

    :rtype: bytes
    """
    cdef Py_ssize_t n = 0
    cdef const char *s = _ustr(path, &n, b"path")
    cdef bytes d = _as_bytes(data, b"data")
    cdef int32_t x = _i32(xid, b"xid")
    cdef int32_t v = _i32(version, b"version")
    cdef Py_ssize_t dn = -1 if d is None else PyBytes_GET_SIZE(d)
    cdef Py_ssize_t dlen = 0 if dn < 0 else dn
    _check_frame_len(20 + n + dlen)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 24 + n + dlen)
    cdef unsigned char *w = <unsigned char *>PyBytes_AS_STRING(out)
    _put32(w, <uint32_t>(20 + n + dlen))
    _put32(w + 4, <uint32_t>x)
    _put32(w + 8, zk.SET_DATA)
    _put32(w + 12, <uint32_t>n)
    memcpy(w + 16, s, n)
    w += 16 + n
    _put32(w, <uint32_t>dn)
    if dlen:
        memcpy(w + 4, PyBytes_AS_STRING(d), dlen)
    _put32(w + 4 + dlen, <uint32_t>v)
    return out


def encode_add_watch(xid, path, mode):
    """Encode an AddWatchRequest (``ustring path, int mode``).

    :param mode: 0 persistent, 1 persistent recursive.
    :rtype: bytes
    """
    return _path_int(xid, zk.ADD_WATCH, path, mode, b"mode")


def encode_remove_watches(xid, path, watcher_type):
    """Encode a RemoveWatchesRequest (``ustring path, int type``).

    :param watcher_type: 1 children, 2 data, 3 any.
    :rtype: bytes
    """
    return _path_int(xid, zk.REMOVE_WATCHES, path, watcher_type,
                     b"watcher_type")


cdef bytes _set_watches_frame(int64_t zxid, list batch):
    cdef _Writer w
    cdef bint persistent = bool(batch[3] or batch[4])
    cdef Py_ssize_t n = 0, k, count = 5 if persistent else 3
    cdef const char *s
    cdef list paths
    _w_init(&w)
    try:
        w.len = 12
        _w_i64(&w, zxid)
        for k in range(count):
            paths = <list>batch[k]
            _w_i32(&w, <int32_t>len(paths))
            for p in paths:
                s = PyUnicode_AsUTF8AndSize(p, &n)
                _w_blob(&w, s, n)
        return _w_finish(&w, zk.SET_WATCHES_XID,
                         zk.SET_WATCHES2 if persistent else zk.SET_WATCHES)
    finally:
        _w_free(&w)


def encode_set_watches(relative_zxid, data_paths, exist_paths, child_paths,
                       persistent_paths=(), recursive_paths=()):
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
    cdef Py_ssize_t n = 0, cost, size = 0
    cdef int index
    cdef list lists = []
    for paths in (data_paths, exist_paths, child_paths, persistent_paths,
                  recursive_paths):
        converted = []
        for p in paths:
            _ustr(p, &n, b"watch path")
            converted.append(p)
        lists.append(converted)
    cdef int64_t zxid = _i64(relative_zxid, b"relative_zxid")
    cdef list frames = []
    cdef list batch = [[], [], [], [], []]
    for index in range(5):
        for p in <list>lists[index]:
            PyUnicode_AsUTF8AndSize(p, &n)
            cost = 4 + n
            if size and size + cost > zk.SET_WATCHES_MAX:
                frames.append(_set_watches_frame(zxid, batch))
                batch = [[], [], [], [], []]
                size = 0
            (<list>batch[index]).append(p)
            size += cost
    if size:
        frames.append(_set_watches_frame(zxid, batch))
    return frames


cdef bytes _header_frame(int32_t xid, int32_t opcode):
    """A request of a header and no record."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 12)
    cdef unsigned char *w = <unsigned char *>PyBytes_AS_STRING(out)
    _put32(w, 8)
    _put32(w + 4, <uint32_t>xid)
    _put32(w + 8, <uint32_t>opcode)
    return out


cdef bytes _PING_FRAME = _header_frame(zk.PING_XID, zk.PING)


def encode_ping():
    """Encode a ping (xid :data:`PING_XID`, opcode :data:`PING`, no body).

    :rtype: bytes
    """
    return _PING_FRAME


def encode_close(xid):
    """Encode a closeSession request (opcode :data:`CLOSE`, no body).

    :rtype: bytes
    """
    return _header_frame(_i32(xid, b"xid"), zk.CLOSE)


def encode_raw(xid, opcode, body):
    """Encode a request from an already-serialised record.

    :param body: the record, e.g. from a kazoo request's ``serialize()``.
    :rtype: bytes
    """
    cdef bytes b = _as_bytes(body, b"body")
    if b is None:
        raise TypeError("body must be bytes, not None")
    cdef int32_t x = _i32(xid, b"xid")
    cdef int32_t op = _i32(opcode, b"opcode")
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
    _check_frame_len(8 + n)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 12 + n)
    cdef unsigned char *w = <unsigned char *>PyBytes_AS_STRING(out)
    _put32(w, <uint32_t>(8 + n))
    _put32(w + 4, <uint32_t>x)
    _put32(w + 8, <uint32_t>op)
    memcpy(w + 12, PyBytes_AS_STRING(b), n)
    return out
