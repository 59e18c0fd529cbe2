# Part of the compiled codec, included by src/_ccodec.pyx (text, not a
# module): sending on a socket, and the error a failed socket call
# raises (reader.pxi raises it too).

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
