# Part of the compiled codec, included by src/_ccodec.pyx (text, not a
# module): FrameReader, which splits the byte stream into frames and
# reads the socket with the GIL released.

cdef inline bint _readable(int fd):
    """Whether ``fd`` has bytes to read now (poll() without waiting)."""
    cdef pollfd pfd
    if fd < 0:
        return False
    pfd.fd = fd
    pfd.events = POLLIN
    pfd.revents = 0
    return poll(&pfd, 1, 0) > 0


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
    # The descriptor block_reads made blocking, and its SO_RCVTIMEO in ns.
    cdef int _block_fd
    cdef int64_t _block_ns
    # Whether a read tries the socket before waiting: tries left after the
    # last one that found bytes, and reads since the last try.
    cdef int _tries
    cdef int _untried

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
        self._block_fd = -1
        self._block_ns = 0
        self._tries = _TRIES_AFTER_A_HIT
        self._untried = 0

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

    def block_reads(self, sock, timeout):
        """Let :meth:`read_from` wait for ``sock``'s bytes inside one
        ``recv()``, instead of a ``poll()`` and then a ``recv()``.

        Clears the descriptor's ``O_NONBLOCK`` and bounds the kernel's
        waits in it by ``timeout`` seconds (``SO_RCVTIMEO`` and
        ``SO_SNDTIMEO``, so that no send can block for longer either).  The
        socket object keeps its own timeout: its methods still poll first.
        Call it once per connection, after the handshake; waits shorter
        than ``timeout`` still poll.

        :returns: True, or False for a TLS socket (left alone: its reads
                  need a non-blocking descriptor).
        :rtype: bool
        :raises OSError: a system call failed.
        """
        cdef double t = timeout
        cdef timeval tv
        cdef int fd, flags
        if not isinstance(sock, _CSocket):
            raise TypeError("sock must be a socket.socket, not %s"
                            % type(sock).__name__)
        if isinstance(sock, _SSLSocket):
            return False
        if not t > 0 or t > 1e6:
            raise ValueError("timeout must be in (0, 1e6] seconds")
        fd = sock.fileno()
        if fd < 0:
            raise ConnectionDropped("socket is closed")
        tv.tv_sec = <time_t>t
        tv.tv_usec = <long>((t - <double>tv.tv_sec) * 1e6)
        if tv.tv_sec == 0 and tv.tv_usec == 0:
            tv.tv_usec = 1
        if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0
                or setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0):
            raise OSError(errno, os.strerror(errno))
        flags = fcntl(fd, F_GETFL)
        if flags < 0 or fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0:
            raise OSError(errno, os.strerror(errno))
        self._block_fd = fd
        self._block_ns = <int64_t>(tv.tv_sec) * 1000000000 + <int64_t>(tv.tv_usec) * 1000
        return True

    def read_from(self, sock, timeout, spin_us=0):
        """Read whatever ``sock`` has into the buffer.

        Waits at most ``timeout`` seconds (``None``: forever) for at least
        one byte.  A plain socket may be blocking or not; its mode is left
        alone.  It is read through its file descriptor with the GIL
        released: polled, or, after :meth:`block_reads`, read in one
        blocking ``recv()`` when the wait may last the whole ``timeout``
        given there.

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
        # Try the socket before sleeping, keeping the GIL: on a busy machine
        # the reply is often there already, and one recv() costs less than
        # a wait and a GIL hand-off.  Where tries keep finding nothing (a
        # synchronous call on an idle machine: the reply takes a round
        # trip) they are a wasted system call each, so after a few misses
        # only every _PROBE_EVERY-th read tries.  With a spin budget, keep
        # trying that long without the GIL.
        err = EAGAIN
        if spin_us > 0 or self._tries > 0 or self._untried >= _PROBE_EVERY:
            self._untried = 0
            got = recv(fd, p, room, MSG_DONTWAIT)
            if got < 0:
                err = errno
                if self._tries > 0:
                    self._tries -= 1
            else:
                self._tries = _TRIES_AFTER_A_HIT
        else:
            self._untried += 1
        if got < 0 and (err == EAGAIN or err == EWOULDBLOCK):
            if spin_us > 0:
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
            elif fd == self._block_fd and (
                    deadline < 0
                    or deadline - _now_ns() + _BLOCK_SLACK_NS >= self._block_ns):
                # block_reads made the descriptor blocking: wait in recv()
                # itself, for at most SO_RCVTIMEO (a little past the
                # deadline at worst).  EAGAIN means that time passed, or
                # the descriptor is non-blocking again: poll for the rest.
                with nogil:
                    got = recv(fd, p, room, 0)
                    if got < 0:
                        err = errno
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
