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
    int setsockopt(int sockfd, int level, int optname, const void *optval,
                   unsigned int optlen)
    int MSG_DONTWAIT
    int SOL_SOCKET
    int SO_RCVTIMEO
    int SO_SNDTIMEO

cdef extern from "<fcntl.h>" nogil:
    int fcntl(int fd, int cmd, ...)
    int F_GETFL
    int F_SETFL
    int O_NONBLOCK

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    ctypedef int clockid_t
    int clock_gettime(clockid_t clk, timespec *tp)
    clockid_t CLOCK_MONOTONIC
    clockid_t CLOCK_THREAD_CPUTIME_ID

cdef extern from "<sys/time.h>" nogil:
    struct timeval:
        time_t tv_sec
        long tv_usec

cdef extern from "Python.h":
    long long PyLong_AsLongLongAndOverflow(object obj, int *overflow)


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
    # FrameReader: after this many reads without trying the socket first,
    # try it once anyway (see FrameReader._read_fd).
    _PROBE_EVERY = 16
    # ...and after a try that found bytes, keep trying this many times.
    _TRIES_AFTER_A_HIT = 4
    # FrameReader: a wait that must end this soon before its recv()'s
    # SO_RCVTIMEO would polls instead (so it overruns by at most this).
    _BLOCK_SLACK_NS = 10000000

cdef object _ZnodeStat = ZnodeStat
cdef object _SSLSocket = _ssl.SSLSocket
cdef tuple _SSL_WANT = (_ssl.SSLWantReadError, _ssl.SSLWantWriteError)
cdef object _SSLZeroReturn = _ssl.SSLZeroReturnError
cdef object _SSLWantRead = _ssl.SSLWantReadError
cdef object _SSLWantWrite = _ssl.SSLWantWriteError
cdef object _SSLEOF = _ssl.SSLEOFError

# The bodies, one job per file under src/codec/, cut as the pure-Python
# twin fastzk._codec is (primitives, encoders, decoders, sending, reader).
# ``include`` is textual: the files are compiled as this one module, after
# the declarations above.
include "codec/primitives.pxi"
include "codec/encoders.pxi"
include "codec/decoders.pxi"
include "codec/sending.pxi"
include "codec/reader.pxi"
