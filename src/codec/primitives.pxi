# Part of the compiled codec, included by src/_ccodec.pyx (text, not a
# module): the helpers every other part uses.  Big-endian loads and stores,
# the clocks, conversion of Python arguments to C integers and strings, and
# the scratch _Writer the encoders build variable-length records in.

cdef inline object _steal(PyObject *ref):
    """Own a new reference returned by the C API."""
    cdef object obj = <object>ref
    Py_DECREF(obj)
    return obj


# -- big-endian loads and stores --------------------------------------------------

cdef inline uint32_t _be32(const unsigned char *p) noexcept nogil:
    return ((<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16)
            | (<uint32_t>p[2] << 8) | <uint32_t>p[3])


cdef inline int64_t _be64(const unsigned char *p) noexcept nogil:
    return <int64_t>((<uint64_t>_be32(p) << 32) | <uint64_t>_be32(p + 4))


cdef inline void _put32(unsigned char *p, uint32_t v) noexcept nogil:
    p[0] = <unsigned char>(v >> 24)
    p[1] = <unsigned char>(v >> 16)
    p[2] = <unsigned char>(v >> 8)
    p[3] = <unsigned char>v


cdef inline void _put64(unsigned char *p, uint64_t v) noexcept nogil:
    _put32(p, <uint32_t>(v >> 32))
    _put32(p + 4, <uint32_t>v)


cdef inline int64_t _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef inline int64_t _thread_cpu_ns() noexcept nogil:
    cdef timespec ts
    if clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0:
        return -1
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


# -- argument conversion --------------------------------------------------------

cdef int64_t _int(object value, const char *name, int bits) except? -1:
    """``value`` as a signed ``bits``-bit int; TypeError/ValueError if not."""
    cdef int overflow = 0
    cdef long long x
    if not PyLong_Check(value):
        try:
            value = PyNumber_Index(value)
        except TypeError:
            raise TypeError("%s must be an int, not %s"
                            % (name.decode("ascii"), type(value).__name__)) from None
    x = PyLong_AsLongLongAndOverflow(value, &overflow)
    if x == -1 and PyErr_Occurred() != NULL:
        return -1
    if overflow or (bits == 32 and (x < INT32_MIN or x > INT32_MAX)):
        raise ValueError("%s=%d does not fit in a signed %d-bit integer"
                         % (name.decode("ascii"), value, bits))
    return x


cdef inline int32_t _i32(object value, const char *name) except? -1:
    return <int32_t>_int(value, name, 32)


cdef inline int64_t _i64(object value, const char *name) except? -1:
    return _int(value, name, 64)


cdef const char *_ustr(object value, Py_ssize_t *size, const char *name) except NULL:
    if PyUnicode_Check(value):
        return PyUnicode_AsUTF8AndSize(value, size)
    raise TypeError("%s must be str, not %s"
                    % (name.decode("ascii"), type(value).__name__))


cdef object _as_bytes(object data, const char *name):
    """``data`` as exact bytes, or None; TypeError for anything else."""
    if data is None or PyBytes_CheckExact(data):
        return data
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError("%s must be bytes or None, not %s"
                        % (name.decode("ascii"), type(data).__name__)) from None
    with view:
        return view.tobytes()


cdef inline int _check_frame_len(Py_ssize_t body) except -1:
    if body > INT32_MAX:
        raise ValueError("frame too large: %d bytes" % body)
    return 0


# -- scratch writer for variable-length records ---------------------------------

cdef struct _Writer:
    unsigned char *buf
    Py_ssize_t len
    Py_ssize_t cap
    bint heap
    unsigned char stack[_WRITER_STACK]


cdef inline void _w_init(_Writer *w) noexcept:
    w.buf = w.stack
    w.len = 0
    w.cap = _WRITER_STACK
    w.heap = False


cdef inline void _w_free(_Writer *w) noexcept:
    if w.heap:
        PyMem_Free(w.buf)
        w.heap = False
        w.buf = w.stack


cdef int _w_grow(_Writer *w, Py_ssize_t extra) except -1:
    cdef Py_ssize_t cap = w.cap
    cdef unsigned char *p
    if extra > (<Py_ssize_t>1 << 40) - w.len:
        raise MemoryError()
    while cap - w.len < extra:
        cap *= 2
    if w.heap:
        p = <unsigned char *>PyMem_Realloc(w.buf, cap)
    else:
        p = <unsigned char *>PyMem_Malloc(cap)
        if p != NULL:
            memcpy(p, w.buf, w.len)
    if p == NULL:
        raise MemoryError()
    w.buf = p
    w.cap = cap
    w.heap = True
    return 0


cdef inline int _w_reserve(_Writer *w, Py_ssize_t extra) except -1:
    if w.cap - w.len < extra:
        return _w_grow(w, extra)
    return 0


cdef inline int _w_i32(_Writer *w, int32_t v) except -1:
    _w_reserve(w, 4)
    _put32(w.buf + w.len, <uint32_t>v)
    w.len += 4
    return 0


cdef inline int _w_i64(_Writer *w, int64_t v) except -1:
    _w_reserve(w, 8)
    _put64(w.buf + w.len, <uint64_t>v)
    w.len += 8
    return 0


cdef int _w_blob(_Writer *w, const char *p, Py_ssize_t n) except -1:
    """Write a jute ustring/buffer; ``p`` NULL writes the null (-1)."""
    if p == NULL:
        return _w_i32(w, -1)
    if n > INT32_MAX:
        raise ValueError("string or buffer too long: %d bytes" % n)
    _w_reserve(w, 4 + n)
    _put32(w.buf + w.len, <uint32_t>n)
    memcpy(w.buf + w.len + 4, p, n)
    w.len += 4 + n
    return 0


cdef inline int _w_path(_Writer *w, object path, const char *name) except -1:
    cdef Py_ssize_t n = 0
    cdef const char *s = _ustr(path, &n, name)
    return _w_blob(w, s, n)


cdef int _w_opt_str(_Writer *w, object value, const char *name) except -1:
    cdef Py_ssize_t n = 0
    cdef const char *s
    if value is None:
        return _w_i32(w, -1)
    if not PyUnicode_Check(value):
        raise TypeError("%s must be str or None, not %s"
                        % (name.decode("ascii"), type(value).__name__))
    s = PyUnicode_AsUTF8AndSize(value, &n)
    return _w_blob(w, s, n)


cdef int _w_data(_Writer *w, object data, const char *name) except -1:
    cdef bytes b = _as_bytes(data, name)
    if b is None:
        return _w_i32(w, -1)
    return _w_blob(w, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))


cdef int _w_acl(_Writer *w, object acl) except -1:
    cdef object perms, scheme, ident
    if acl is None:
        return _w_i32(w, -1)
    if not isinstance(acl, (list, tuple)):
        try:
            acl = list(acl)
        except TypeError:
            raise TypeError("acl must be a sequence of ACLs, not %s"
                            % type(acl).__name__) from None
    _w_i32(w, <int32_t>len(acl))
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
        _w_i32(w, _i32(perms, b"acl perms"))
        _w_opt_str(w, scheme, b"acl scheme")
        _w_opt_str(w, ident, b"acl id")
    return 0


cdef bytes _w_finish(_Writer *w, int32_t xid, int32_t opcode):
    """The frame: fills the length prefix and header reserved at buf[0:12]."""
    _check_frame_len(w.len - 4)
    _put32(w.buf, <uint32_t>(w.len - 4))
    _put32(w.buf + 4, <uint32_t>xid)
    _put32(w.buf + 8, <uint32_t>opcode)
    return PyBytes_FromStringAndSize(<char *>w.buf, w.len)
