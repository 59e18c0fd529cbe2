# cython: language_level=3, boundscheck=False, wraparound=False
# cython: initializedcheck=False, cdivision=True, embedsignature=True
"""ZooKeeper wire codec, compiled implementation (built as ``fastzk._ccodec``).

Same names and behaviour as the pure-Python :mod:`fastzk._codec` (see its
docstring).  Encoders write straight into the frame's bytes object (or a
preallocated scratch buffer for the variable-length records) and decoders
read big-endian integers directly off the frame, checking every length
against the end of the frame first: truncated or malformed input raises
:class:`fastzk.errors.ProtocolError`.  :meth:`FrameReader.read_from` polls
and reads the socket's file descriptor with the GIL released.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_CheckSignals, PyErr_Clear, PyErr_ExceptionMatches, PyErr_Occurred
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_Check
from cpython.number cimport PyNumber_Index
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_Check, PyUnicode_DecodeUTF8
from libc.errno cimport EAGAIN, EINTR, errno
from libc.stdint cimport INT32_MAX, INT32_MIN, int32_t, int64_t, uint32_t, uint64_t
from libc.string cimport memcpy, memmove

import os
import ssl as _ssl

from _socket import socket as _CSocket
from kazoo.exceptions import ConnectionDropped
from kazoo.protocol.states import ZnodeStat

from fastzk.errors import ProtocolError

cimport fastzk.protocol.constants as zk

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


cdef extern from "<poll.h>" nogil:
    ctypedef unsigned long nfds_t
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd *fds, nfds_t nfds, int timeout)
    short POLLIN
    short POLLPRI
    short POLLNVAL
    short POLLOUT

cdef extern from "<errno.h>" nogil:
    int EWOULDBLOCK

cdef extern from "<sys/types.h>" nogil:
    ctypedef long ssize_t

cdef extern from "<sys/socket.h>" nogil:
    ssize_t recv(int sockfd, void *buf, size_t len, int flags)
    ssize_t send(int sockfd, const void *buf, size_t len, int flags)
    int MSG_DONTWAIT

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    ctypedef int clockid_t
    int clock_gettime(clockid_t clk, timespec *tp)
    clockid_t CLOCK_MONOTONIC
    clockid_t CLOCK_THREAD_CPUTIME_ID

cdef extern from "Python.h":
    long long PyLong_AsLongLongAndOverflow(object obj, int *overflow)

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


#: Which implementation this module is: ``"python"`` or ``"cython"``.
IMPLEMENTATION = "cython"

# Opcodes and reserved xids, from fastzk/protocol/constants.pxd.
CREATE = zk.CREATE
DELETE = zk.DELETE
EXISTS = zk.EXISTS
GET_DATA = zk.GET_DATA
SET_DATA = zk.SET_DATA
GET_ACL = zk.GET_ACL
SET_ACL = zk.SET_ACL
GET_CHILDREN = zk.GET_CHILDREN
SYNC = zk.SYNC
PING = zk.PING
GET_CHILDREN2 = zk.GET_CHILDREN2
CHECK = zk.CHECK
MULTI = zk.MULTI
CREATE2 = zk.CREATE2
RECONFIG = zk.RECONFIG
CHECK_WATCHES = zk.CHECK_WATCHES
REMOVE_WATCHES = zk.REMOVE_WATCHES
AUTH = zk.AUTH
SET_WATCHES = zk.SET_WATCHES
SET_WATCHES2 = zk.SET_WATCHES2
ADD_WATCH = zk.ADD_WATCH
CLOSE = zk.CLOSE

WATCH_XID = zk.WATCH_XID
PING_XID = zk.PING_XID
AUTH_XID = zk.AUTH_XID
SET_WATCHES_XID = zk.SET_WATCHES_XID

#: Largest frame body a :class:`FrameReader` accepts by default
#: (:data:`fastzk.protocol.constants.MAX_FRAME`).
DEFAULT_MAX_FRAME = zk.MAX_FRAME

cdef enum:
    # FrameReader: initial buffer, and the free space wanted before a read.
    _INITIAL_BUFFER = 262144
    _MIN_READ = 65536
    # Scratch writer: bytes kept on the C stack before going to the heap.
    _WRITER_STACK = 512

cdef object _ZnodeStat = ZnodeStat
cdef object _SSLSocket = _ssl.SSLSocket
cdef tuple _SSL_WANT = (_ssl.SSLWantReadError, _ssl.SSLWantWriteError)
cdef object _SSLZeroReturn = _ssl.SSLZeroReturnError
cdef object _SSLWantRead = _ssl.SSLWantReadError
cdef object _SSLWantWrite = _ssl.SSLWantWriteError
cdef object _SSLEOF = _ssl.SSLEOFError


cdef inline bint _readable(int fd):
    """Whether ``fd`` has bytes to read now (poll() without waiting)."""
    cdef pollfd pfd
    if fd < 0:
        return False
    pfd.fd = fd
    pfd.events = POLLIN
    pfd.revents = 0
    return poll(&pfd, 1, 0) > 0


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


# -- encoders -------------------------------------------------------------------

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


# -- decoders -------------------------------------------------------------------
#
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


# -- frame reader ---------------------------------------------------------------

cdef object _socket_error(int err):
    return ConnectionDropped("socket error: [Errno %d] %s" % (err, os.strerror(err)))


def send_all(sock, data):
    """Send all of ``data`` (a bytes-like object) on ``sock``.

    On a plain socket the first try is a non-blocking ``send()`` made
    without releasing the GIL: a request frame fits the socket buffer
    almost always, and keeping the GIL spares the thread a hand-off (two
    context switches when other threads are runnable).  Whatever that try
    leaves goes through ``sock.sendall``, which may block and honours the
    socket's timeout.

    On a :class:`fastzk.drivers.tls.TlsSocket` the first try is one
    ``SSL_write`` of all of ``data`` under the socket's TLS lock, without
    its ``sendall``'s Python layers; when the socket cannot take it all
    now, its ``sendall`` retries with the same bytes (as OpenSSL requires
    after a write that wants to wait) and waits.

    :raises OSError: as ``socket.sendall`` does.
    """
    cdef _Src src
    cdef ssize_t sent = 0
    cdef int err = 0
    cdef Py_ssize_t wrote
    if isinstance(sock, _SSLSocket):
        lock = getattr(sock, "_tls_lock", None)
        sslobj = getattr(sock, "_sslobj", None)
        if lock is not None and sslobj is not None:
            lock.acquire()
            try:
                wrote = sslobj.write(data)
            except _SSL_WANT:
                wrote = 0
            finally:
                lock.release()
            if wrote >= len(data):
                return
            if wrote:
                data = memoryview(data)[wrote:]
        sock.sendall(data)
        return
    if isinstance(sock, _CSocket) and not isinstance(sock, _SSLSocket):
        fd = sock.fileno()
        if fd >= 0:
            _src_open(&src, data)
            try:
                sent = send(fd, src.p, src.n, MSG_DONTWAIT)
                if sent < 0:
                    err = errno
                    sent = 0
                elif sent == src.n:
                    return
            finally:
                _src_close(&src)
            if err and err != EAGAIN and err != EWOULDBLOCK and err != EINTR:
                raise OSError(err, os.strerror(err))
            if sent:
                data = memoryview(data)[sent:]
    sock.sendall(data)


cdef class FrameReader:
    """Split a byte stream into ZooKeeper frames.

    Keeps a growable receive buffer: bytes come in through :meth:`feed` or
    :meth:`read_from` and whole frames go out through :meth:`next_frame`.
    Not thread-safe: one thread at a time may use a reader.

    :param max_frame: the largest frame body accepted; a bigger (or
                      negative) length prefix raises
                      :class:`~fastzk.errors.ProtocolError`.
    """

    cdef unsigned char *_buf
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _start
    cdef Py_ssize_t _end
    cdef bint _busy
    cdef public Py_ssize_t max_frame
    #: Of the last :meth:`read_from`'s busy-poll, the nanoseconds this
    #: thread spent off its CPU (the spin's wall time minus the thread's
    #: CPU time): other threads ran in its place.  0 when it did not spin.
    cdef readonly int64_t spin_off_cpu_ns

    def __cinit__(self, *args, **kwargs):
        self._buf = <unsigned char *>PyMem_Malloc(_INITIAL_BUFFER)
        if self._buf == NULL:
            raise MemoryError()
        self._cap = _INITIAL_BUFFER
        self._start = 0
        self._end = 0
        self._busy = False
        self.max_frame = zk.MAX_FRAME
        self.spin_off_cpu_ns = 0

    def __init__(self, max_frame=DEFAULT_MAX_FRAME):
        cdef int64_t m = _i64(max_frame, b"max_frame")
        if m < 0 or m > INT32_MAX:
            raise ValueError("max_frame must be in [0, 2**31 - 1]")
        self.max_frame = <Py_ssize_t>m

    def __dealloc__(self):
        if self._buf != NULL:
            PyMem_Free(self._buf)
            self._buf = NULL

    def buffered(self):
        """Return the number of bytes received but not yet returned as frames.

        :rtype: int
        """
        return self._end - self._start

    cdef int _reserve(self, Py_ssize_t want) except -1:
        """Make room for ``want`` more bytes after ``_end``."""
        cdef Py_ssize_t pending, size
        cdef unsigned char *buf
        if self._busy:
            raise RuntimeError("FrameReader used by two threads at once")
        if self._cap - self._end >= want:
            return 0
        pending = self._end - self._start
        if pending + want <= self._cap:
            # Slide the partial frame to the front (it is smaller than a
            # frame, and this happens at most once per buffer's worth).
            memmove(self._buf, self._buf + self._start, pending)
        else:
            if want > (<Py_ssize_t>1 << 40):
                raise MemoryError()
            size = self._cap
            while size < pending + want:
                size *= 2
            buf = <unsigned char *>PyMem_Malloc(size)
            if buf == NULL:
                raise MemoryError()
            memcpy(buf, self._buf + self._start, pending)
            PyMem_Free(self._buf)
            self._buf = buf
            self._cap = size
        self._start = 0
        self._end = pending
        return 0

    cdef Py_ssize_t _want(self):
        """How many free bytes a socket read should have room for."""
        cdef Py_ssize_t avail = self._end - self._start
        cdef int32_t length
        if avail >= 4:
            length = <int32_t>_be32(self._buf + self._start)
            if (0 <= length <= self.max_frame
                    and 4 + <Py_ssize_t>length - avail > _MIN_READ):
                return 4 + <Py_ssize_t>length - avail
        return _MIN_READ

    def feed(self, data):
        """Append ``data`` (a bytes-like object) to the buffer."""
        cdef _Src src
        _src_open(&src, data)
        try:
            self._reserve(src.n)
            memcpy(self._buf + self._end, src.p, src.n)
            self._end += src.n
        finally:
            _src_close(&src)

    def next_frame(self):
        """Return the next complete frame body, or ``None`` if incomplete.

        :rtype: bytes or None
        :raises ProtocolError: for a negative or too large length prefix.
        """
        cdef Py_ssize_t start = self._start
        cdef Py_ssize_t avail = self._end - start
        cdef int32_t length
        if avail < 4:
            return None
        length = <int32_t>_be32(self._buf + start)
        if length < 0 or length > self.max_frame:
            raise ProtocolError("invalid frame length %d (max %d)"
                                % (length, self.max_frame))
        if avail - 4 < length:
            return None
        frame = PyBytes_FromStringAndSize(<char *>self._buf + start + 4, length)
        start += 4 + length
        if start == self._end:
            self._start = self._end = 0
        else:
            self._start = start
        return frame

    def read_from(self, sock, timeout, spin_us=0):
        """Read whatever ``sock`` has into the buffer.

        Waits at most ``timeout`` seconds (``None``: forever) for at least
        one byte.  A plain socket may be blocking or not; its mode is left
        alone.  It is polled and read through its file descriptor with the
        GIL released.

        An :class:`ssl.SSLSocket` must be non-blocking (its ``recv_into``
        raising :exc:`ssl.SSLWantReadError` when no whole record is in, as
        :class:`fastzk.drivers.tls.TlsSocket` does): it is polled (without
        the GIL) only when its ``pending()`` says the TLS layer holds no
        decrypted bytes, then every record in is decrypted into the buffer
        in one go, under the socket's TLS lock (``_tls_lock``, when it
        has one).

        :param spin_us: busy-poll a plain socket for up to this many
                        microseconds (without the GIL) before blocking in
                        ``poll``; lowers latency on fast links.
        :returns: the number of bytes read, 0 on timeout.
        :rtype: int
        :raises kazoo.exceptions.ConnectionDropped: when the server closed
                the connection or the socket failed.
        :raises ssl.SSLError: the TLS layer failed (an alert from the
                server, for one).
        :raises TypeError: when ``sock`` is not a :class:`socket.socket`.
        """
        cdef int64_t deadline = -1
        cdef double t
        cdef long long spin = 0
        if not isinstance(sock, _CSocket):
            raise TypeError("sock must be a socket.socket, not %s"
                            % type(sock).__name__)
        if timeout is not None:
            t = timeout
            if not t > 0:
                t = 0
            if t < 1e9:
                deadline = _now_ns() + <int64_t>(t * 1e9)
        if isinstance(sock, _SSLSocket):
            return self._read_tls(sock, deadline)
        if spin_us:
            spin = _i64(spin_us, b"spin_us")
        self.spin_off_cpu_ns = 0
        self._reserve(self._want())
        fd = sock.fileno()
        if fd < 0:
            raise ConnectionDropped("socket is closed")
        self._busy = True
        try:
            return self._read_fd(fd, deadline, spin)
        finally:
            self._busy = False

    cdef Py_ssize_t _read_fd(self, int fd, int64_t deadline, long long spin_us) except -1:
        cdef unsigned char *p = self._buf + self._end
        cdef size_t room = <size_t>(self._cap - self._end)
        cdef ssize_t got = -1
        cdef int err = 0
        cdef int r
        cdef int ms
        cdef int64_t now, stop, rem, cpu
        cdef pollfd pfd
        # Try the socket before sleeping in poll(), keeping the GIL: on a
        # busy machine the reply is often there already, and one recv()
        # costs less than a poll(), a recv() and a GIL hand-off.  With a
        # spin budget, keep trying that long without the GIL.
        got = recv(fd, p, room, MSG_DONTWAIT)
        if got < 0:
            err = errno
            if spin_us > 0 and (err == EAGAIN or err == EWOULDBLOCK):
                with nogil:
                    cpu = _thread_cpu_ns()
                    now = _now_ns()
                    stop = now + spin_us * 1000
                    if deadline >= 0 and stop > deadline:
                        stop = deadline
                    while True:
                        got = recv(fd, p, room, MSG_DONTWAIT)
                        if got >= 0:
                            break
                        err = errno
                        if err != EAGAIN and err != EWOULDBLOCK:
                            break
                        if _now_ns() >= stop:
                            break
                    if cpu >= 0:
                        cpu = _thread_cpu_ns() - cpu
                        rem = (_now_ns() - now) - cpu
                        self.spin_off_cpu_ns = rem if rem > 0 else 0
        if self._took(got, err):
            return got
        pfd.fd = fd
        pfd.events = POLLIN | POLLPRI
        while True:
            now = 0
            if deadline < 0:
                ms = -1
            else:
                now = _now_ns()
                rem = deadline - now
                if rem <= 0:
                    ms = 0
                elif rem >= <int64_t>INT32_MAX * 1000000:
                    ms = INT32_MAX
                else:
                    ms = <int>((rem + 999999) // 1000000)
            got = -1
            err = 0
            with nogil:
                pfd.revents = 0
                r = poll(&pfd, 1, ms)
                if r < 0:
                    err = errno
                elif r > 0 and not (pfd.revents & POLLNVAL):
                    got = recv(fd, p, room, MSG_DONTWAIT)
                    if got < 0:
                        err = errno
            if r < 0:
                if err == EINTR:
                    PyErr_CheckSignals()
                    continue
                raise _socket_error(err)
            if r == 0:
                if deadline >= 0 and _now_ns() >= deadline:
                    return 0
                continue
            if pfd.revents & POLLNVAL:
                raise ConnectionDropped("socket is closed")
            if self._took(got, err):
                return got
            # A spurious wake-up or a signal.
            if deadline >= 0 and _now_ns() >= deadline:
                return 0

    cdef object _read_tls(self, sock, int64_t deadline):
        cdef Py_ssize_t got
        cdef int events = POLLIN | POLLPRI
        self.spin_off_cpu_ns = 0
        self._reserve(self._want())
        self._busy = True
        try:
            while True:
                # Bytes OpenSSL decrypted already are not in the kernel's
                # buffer any more: poll() would not see them.  Without
                # them, wait for the descriptor first (a read attempt
                # that finds nothing costs an exception).  Each drain
                # reads until OpenSSL wants more from the network, so
                # after it no whole record is left behind.
                if not sock.pending():
                    fd = sock.fileno()
                    if fd < 0:
                        raise ConnectionDropped("socket is closed")
                    if not self._poll_fd(fd, events, deadline):
                        return 0
                got = self._drain_tls(sock)
                if got > 0:
                    return got
                events = POLLIN | POLLPRI
                if got < 0:  # the TLS layer must write first
                    events = events | POLLOUT
                if deadline >= 0 and _now_ns() >= deadline:
                    return 0
        finally:
            self._busy = False

    cdef Py_ssize_t _drain_tls(self, sock) except? -2:
        """Decrypt every record ``sock`` has, without waiting, into the
        buffer until it is full: the bytes read, 0 when no whole record
        was in, -1 when the TLS layer must write before it can read.

        OpenSSL's ``SSL_read`` returns one record at a time, and a server
        that answers pipelined requests one by one sends a record per
        reply: taking them all in one call, under one hold of the
        socket's TLS lock (:class:`fastzk.drivers.tls.TlsSocket`), saves
        a Python call, a ``pending()`` and a ``poll()`` per reply.
        """
        cdef Py_ssize_t total = 0
        cdef Py_ssize_t room, n
        cdef int fd
        cdef bint polled = False
        sslobj = getattr(sock, "_sslobj", None)
        if sslobj is None:
            raise ConnectionDropped("socket is closed")
        read = sslobj.read
        fd = sock.fileno()
        lock = getattr(sock, "_tls_lock", None)
        if lock is not None:
            lock.acquire()
        try:
            while True:
                room = self._cap - self._end
                if room <= 0:
                    return total
                # After the first record, read on only when OpenSSL holds
                # more of it or the kernel has bytes: a read that finds
                # nothing costs a syscall and an exception, a poll() of
                # no time only the syscall.  A synchronous reply comes
                # alone; after a second record more are likely to
                # follow (pipelined replies), read until none is in.
                if (total and not polled and not sslobj.pending()
                        and not _readable(fd)):
                    return total
                polled = total != 0
                view = PyMemoryView_FromMemory(
                    <char *>self._buf + self._end, room, PyBUF_WRITE)
                try:
                    n = read(room, view)
                except _SSLWantRead:
                    return total
                except _SSLWantWrite:
                    return total if total else -1
                except _SSLZeroReturn:
                    if total:
                        return total  # the close is seen by the next read
                    raise ConnectionDropped("connection closed by server")
                except _SSLEOF:
                    if total:
                        return total
                    if not getattr(sock, "suppress_ragged_eofs", True):
                        raise
                    raise ConnectionDropped("connection closed by server")
                finally:
                    view.release()
                if n == 0:
                    if total:
                        return total
                    raise ConnectionDropped("connection closed by server")
                self._end += n
                total += n
        finally:
            if lock is not None:
                lock.release()

    cdef int _poll_fd(self, int fd, int events, int64_t deadline) except -1:
        """Wait (without the GIL) until ``fd`` has ``events``: 1, or 0 at
        ``deadline``."""
        cdef pollfd pfd
        cdef int r, ms, err = 0
        cdef int64_t rem
        pfd.fd = fd
        pfd.events = events
        while True:
            if deadline < 0:
                ms = -1
            else:
                rem = deadline - _now_ns()
                if rem <= 0:
                    ms = 0
                elif rem >= <int64_t>INT32_MAX * 1000000:
                    ms = INT32_MAX
                else:
                    ms = <int>((rem + 999999) // 1000000)
            with nogil:
                pfd.revents = 0
                r = poll(&pfd, 1, ms)
                if r < 0:
                    err = errno
            if r < 0:
                if err == EINTR:
                    PyErr_CheckSignals()
                    continue
                raise _socket_error(err)
            if r > 0:
                if pfd.revents & POLLNVAL:
                    raise ConnectionDropped("socket is closed")
                return 1
            if deadline >= 0 and _now_ns() >= deadline:
                return 0

    cdef int _took(self, ssize_t got, int err) except -1:
        """Account for one recv(): 1 when it brought bytes, 0 when the
        socket had none yet or a signal came (its handlers have run);
        raises when the connection is gone."""
        if got > 0:
            self._end += got
            return 1
        if got == 0:
            raise ConnectionDropped("connection closed by server")
        if err == EINTR:
            PyErr_CheckSignals()
            return 0
        if err == EAGAIN or err == EWOULDBLOCK:
            return 0
        raise _socket_error(err)
