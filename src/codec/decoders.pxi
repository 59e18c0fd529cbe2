# Part of the compiled codec, included by src/_ccodec.pyx (text, not a
# module): the decode_* functions, reading records off a reply frame with
# every length checked against the end of the frame first.

cdef extern from *:
    """
    /* Build a kazoo ZnodeStat (a namedtuple subclass) from the 11 jute Stat
       fields without running its Python-level __new__.  Up to 3.13 this
       is exactly what tuple.__new__(ZnodeStat, fields) does (tp_alloc,
       then fill the items); later versions (cached tuple hash, free
       threading) go through tuple.__new__ itself. */
    #if PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
    #define FASTZK_DIRECT_TUPLE 1
    #else
    #define FASTZK_DIRECT_TUPLE 0
    #endif

    static PyObject *fastzk_make_stat(PyObject *type, const unsigned char *p) {
        PyObject *v[11];
        PyObject *result = NULL;
        int i, k;
        for (i = 0, k = 0; i < 11; i++) {
            /* offsets and widths of czxid .. pzxid */
            static const unsigned char off[11] = {0, 8, 16, 24, 32, 36, 40, 44, 52, 56, 60};
            static const unsigned char wide[11] = {1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1};
            const unsigned char *q = p + off[i];
            uint32_t hi = ((uint32_t)q[0] << 24) | ((uint32_t)q[1] << 16)
                          | ((uint32_t)q[2] << 8) | (uint32_t)q[3];
            if (wide[i]) {
                uint32_t lo = ((uint32_t)q[4] << 24) | ((uint32_t)q[5] << 16)
                              | ((uint32_t)q[6] << 8) | (uint32_t)q[7];
                v[i] = PyLong_FromLongLong((long long)(int64_t)(((uint64_t)hi << 32) | lo));
            } else {
                v[i] = PyLong_FromLong((long)(int32_t)hi);
            }
            if (v[i] == NULL) goto done;
            k = i + 1;
        }
    #if FASTZK_DIRECT_TUPLE
        result = ((PyTypeObject *)type)->tp_alloc((PyTypeObject *)type, 11);
        if (result != NULL) {
            for (i = 0; i < 11; i++) {
                PyTuple_SET_ITEM(result, i, v[i]);
                v[i] = NULL;
            }
        }
    #else
        {
            PyObject *fields = PyTuple_New(11);
            if (fields != NULL) {
                for (i = 0; i < 11; i++) {
                    PyTuple_SET_ITEM(fields, i, v[i]);
                    v[i] = NULL;
                }
                PyObject *args = PyTuple_Pack(1, fields);
                Py_DECREF(fields);
                if (args != NULL) {
                    result = PyTuple_Type.tp_new((PyTypeObject *)type, args, NULL);
                    Py_DECREF(args);
                }
            }
        }
    #endif
    done:
        for (i = 0; i < k; i++) {
            Py_XDECREF(v[i]);
        }
        return result;
    }

    /* PyUnicode_DecodeUTF8 returning NULL (exception set) on bad input. */
    #define fastzk_decode_utf8(p, n) PyUnicode_DecodeUTF8((const char *)(p), (n), NULL)
    """
    object fastzk_make_stat(object type, const unsigned char *p)
    PyObject *fastzk_decode_utf8(const unsigned char *p, Py_ssize_t n)


# A decoder gets the frame as (pointer, length) through _Src, which holds a
# buffer view for anything but bytes (so a bytearray cannot be resized under
# us), and walks it with a position that never passes the length.

cdef struct _Src:
    const unsigned char *p
    Py_ssize_t n
    bint has_view
    Py_buffer view


cdef inline int _src_open(_Src *src, object frame) except -1:
    if PyBytes_CheckExact(frame):
        src.p = <const unsigned char *>PyBytes_AS_STRING(frame)
        src.n = PyBytes_GET_SIZE(frame)
        src.has_view = False
        return 0
    PyObject_GetBuffer(frame, &src.view, PyBUF_SIMPLE)
    src.has_view = True
    src.p = <const unsigned char *>src.view.buf
    src.n = src.view.len
    return 0


cdef inline void _src_close(_Src *src) noexcept:
    if src.has_view:
        src.has_view = False
        PyBuffer_Release(&src.view)


cdef int _truncated(const char *what, Py_ssize_t pos, Py_ssize_t need,
                    Py_ssize_t n) except -1:
    raise ProtocolError(
        "truncated %s: %d bytes needed at offset %d of a %d-byte frame"
        % (what.decode("ascii"), need, pos, n))


cdef inline Py_ssize_t _start(Py_ssize_t offset, Py_ssize_t n) except -1:
    if offset < 0:
        raise ValueError("offset must be >= 0, not %d" % offset)
    if offset > n:
        _truncated(b"frame", offset, 0, n)
    return offset


cdef int _bad_length(const char *what, int32_t length, Py_ssize_t pos) except -1:
    raise ProtocolError("negative %s length %d at offset %d"
                        % (what.decode("ascii"), length, pos))


cdef int _utf8_error(Py_ssize_t pos) except -1:
    """Turn the pending UnicodeDecodeError into a ProtocolError."""
    if PyErr_ExceptionMatches(UnicodeDecodeError):
        PyErr_Clear()
        raise ProtocolError("invalid UTF-8 in string at offset %d" % pos)
    return -1  # propagate anything else (MemoryError)


cdef inline object _utf8(const unsigned char *p, Py_ssize_t length, Py_ssize_t pos):
    cdef PyObject *s = fastzk_decode_utf8(p, length)
    if s == NULL:
        _utf8_error(pos)
    return _steal(s)


cdef object _read_str(const unsigned char *p, Py_ssize_t n, Py_ssize_t *pos):
    cdef Py_ssize_t i = pos[0]
    cdef int32_t length
    if n - i < 4:
        _truncated(b"string", i, 4, n)
    length = <int32_t>_be32(p + i)
    i += 4
    if length < 0:
        if length != -1:
            _bad_length(b"string", length, i - 4)
        pos[0] = i
        return None
    if length > n - i:
        _truncated(b"string", i, length, n)
    s = _utf8(p + i, length, i)
    pos[0] = i + length
    return s


cdef object _read_buffer(const unsigned char *p, Py_ssize_t n, Py_ssize_t *pos):
    cdef Py_ssize_t i = pos[0]
    cdef int32_t length
    if n - i < 4:
        _truncated(b"buffer", i, 4, n)
    length = <int32_t>_be32(p + i)
    i += 4
    if length < 0:
        if length != -1:
            _bad_length(b"buffer", length, i - 4)
        pos[0] = i
        return None
    if length > n - i:
        _truncated(b"buffer", i, length, n)
    pos[0] = i + length
    return PyBytes_FromStringAndSize(<char *>p + i, length)


cdef object _read_stat(const unsigned char *p, Py_ssize_t n, Py_ssize_t *pos):
    cdef Py_ssize_t i = pos[0]
    if n - i < zk.STAT_SIZE:
        _truncated(b"Stat", i, zk.STAT_SIZE, n)
    pos[0] = i + zk.STAT_SIZE
    return fastzk_make_stat(_ZnodeStat, p + i)


cdef list _read_strings(const unsigned char *p, Py_ssize_t n, Py_ssize_t *pos):
    cdef Py_ssize_t i = pos[0]
    cdef Py_ssize_t k
    cdef int32_t count, length
    if n - i < 4:
        _truncated(b"vector", i, 4, n)
    count = <int32_t>_be32(p + i)
    i += 4
    if count < 0:
        if count != -1:
            _bad_length(b"vector", count, i - 4)
        pos[0] = i
        return []
    # every element takes at least 4 bytes: reject absurd counts up front
    if count > (n - i) >> 2:
        _truncated(b"vector", i, <Py_ssize_t>count * 4, n)
    cdef list out = PyList_New(count)
    for k in range(count):
        if n - i < 4:
            _truncated(b"string", i, 4, n)
        length = <int32_t>_be32(p + i)
        i += 4
        if length < 0:
            if length != -1:
                _bad_length(b"string", length, i - 4)
            Py_INCREF(None)
            PyList_SET_ITEM(out, k, None)
            continue
        if length > n - i:
            _truncated(b"string", i, length, n)
        s = _utf8(p + i, length, i)
        Py_INCREF(s)
        PyList_SET_ITEM(out, k, s)
        i += length
    pos[0] = i
    return out


def decode_reply_header(frame):
    """Decode a ReplyHeader at the start of ``frame``.

    :returns: ``(xid, zxid, err)``; the record follows at offset 16.
    :raises ProtocolError: if the frame is shorter than 16 bytes.
    """
    cdef _Src src
    _src_open(&src, frame)
    try:
        if src.n < 16:
            _truncated(b"reply header", 0, 16, src.n)
        return (<int32_t>_be32(src.p), _be64(src.p + 4),
                <int32_t>_be32(src.p + 12))
    finally:
        _src_close(&src)


def decode_connect_response(frame):
    """Decode a ConnectResponse frame (the handshake reply).

    :returns: ``(protocol_version, timeout_ms, session_id, passwd,
              read_only)``; ``read_only`` is ``False`` when the server
              omits it (servers before 3.4).
    """
    cdef _Src src
    cdef Py_ssize_t pos = 16
    _src_open(&src, frame)
    try:
        if src.n < 20:
            _truncated(b"ConnectResponse", 0, 20, src.n)
        passwd = _read_buffer(src.p, src.n, &pos)
        read_only = pos < src.n and src.p[pos] != 0
        return (<int32_t>_be32(src.p), <int32_t>_be32(src.p + 4),
                _be64(src.p + 8), passwd, read_only)
    finally:
        _src_close(&src)


def decode_stat(frame, Py_ssize_t offset):
    """Decode a Stat at ``offset``.

    :rtype: :class:`kazoo.protocol.states.ZnodeStat`
    """
    cdef _Src src
    cdef Py_ssize_t pos
    _src_open(&src, frame)
    try:
        pos = _start(offset, src.n)
        return _read_stat(src.p, src.n, &pos)
    finally:
        _src_close(&src)


def decode_data_stat(frame, Py_ssize_t offset):
    """Decode a GetDataResponse (``buffer data, Stat stat``).

    :returns: ``(data, stat)``; ``data`` is bytes or ``None``.
    """
    cdef _Src src
    cdef Py_ssize_t pos
    _src_open(&src, frame)
    try:
        pos = _start(offset, src.n)
        data = _read_buffer(src.p, src.n, &pos)
        return data, _read_stat(src.p, src.n, &pos)
    finally:
        _src_close(&src)


def decode_children(frame, Py_ssize_t offset):
    """Decode a GetChildrenResponse (``vector<ustring> children``).

    :returns: the child names (a null vector gives ``[]``).
    :rtype: list[str]
    """
    cdef _Src src
    cdef Py_ssize_t pos
    _src_open(&src, frame)
    try:
        pos = _start(offset, src.n)
        return _read_strings(src.p, src.n, &pos)
    finally:
        _src_close(&src)


def decode_children_stat(frame, Py_ssize_t offset):
    """Decode a GetChildren2Response (``vector<ustring> children, Stat``).

    :returns: ``(children, stat)``.
    """
    cdef _Src src
    cdef Py_ssize_t pos
    _src_open(&src, frame)
    try:
        pos = _start(offset, src.n)
        children = _read_strings(src.p, src.n, &pos)
        return children, _read_stat(src.p, src.n, &pos)
    finally:
        _src_close(&src)


def decode_string(frame, Py_ssize_t offset):
    """Decode a single ustring (CreateResponse, SyncResponse).

    :returns: the string, or ``None`` for a null string.
    """
    cdef _Src src
    cdef Py_ssize_t pos
    _src_open(&src, frame)
    try:
        pos = _start(offset, src.n)
        return _read_str(src.p, src.n, &pos)
    finally:
        _src_close(&src)


def decode_string_stat(frame, Py_ssize_t offset):
    """Decode a Create2Response (``ustring path, Stat stat``).

    :returns: ``(path, stat)``.
    """
    cdef _Src src
    cdef Py_ssize_t pos
    _src_open(&src, frame)
    try:
        pos = _start(offset, src.n)
        path = _read_str(src.p, src.n, &pos)
        return path, _read_stat(src.p, src.n, &pos)
    finally:
        _src_close(&src)


def decode_watch_event(frame, Py_ssize_t offset):
    """Decode a WatcherEvent (``int type, int state, ustring path``).

    :returns: ``(type, state, path)``.
    """
    cdef _Src src
    cdef Py_ssize_t pos
    _src_open(&src, frame)
    try:
        pos = _start(offset, src.n)
        if src.n - pos < 8:
            _truncated(b"WatcherEvent", pos, 8, src.n)
        event_type = <int32_t>_be32(src.p + pos)
        state = <int32_t>_be32(src.p + pos + 4)
        pos += 8
        return event_type, state, _read_str(src.p, src.n, &pos)
    finally:
        _src_close(&src)


def decode_multi(frame, Py_ssize_t offset):
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
    cdef _Src src
    cdef Py_ssize_t pos, n
    cdef const unsigned char *p
    cdef int32_t op
    cdef list results = []
    _src_open(&src, frame)
    try:
        p = src.p
        n = src.n
        pos = _start(offset, n)
        while True:
            if n - pos < 9:
                _truncated(b"MultiHeader", pos, 9, n)
            op = <int32_t>_be32(p + pos)
            if p[pos + 4] != 0:
                return results
            pos += 9
            if op == zk.CREATE:
                results.append((zk.CREATE, _read_str(p, n, &pos)))
            elif op == zk.CREATE2:
                path = _read_str(p, n, &pos)
                results.append((zk.CREATE2, (path, _read_stat(p, n, &pos))))
            elif op == zk.SET_DATA:
                results.append((zk.SET_DATA, _read_stat(p, n, &pos)))
            elif op == zk.DELETE or op == zk.CHECK:
                results.append((op, None))
            elif op == zk.ERROR:
                if n - pos < 4:
                    _truncated(b"ErrorResponse", pos, 4, n)
                results.append((zk.ERROR, <int32_t>_be32(p + pos)))
                pos += 4
            else:
                raise ProtocolError("unknown multi result type %d at offset %d"
                                    % (op, pos - 9))
    finally:
        _src_close(&src)
