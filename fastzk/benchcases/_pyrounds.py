"""The interpreter's floor of a round trip: ``benchmarks/c/raw_rounds.c``'s
loop written in Python, run as a helper process.

    python -m fastzk.benchcases._pyrounds HOSTS

speaks the raw loop's protocol: it connects to the first server of HOSTS
(the chroot ignored), makes the same handshake, prints ``ready
session_id=0x... timeout_ms=N``, then for each line on stdin

    children PATH N     N synchronous getChildren round trips
    quit                (or end of input) closes the session

prints ``count=N wall_s=S cpu_s=C children=K`` (CPU as user + system
seconds of this process, ``getrusage``).  An error reply or a lost
connection ends it with one line on stderr and exit status 1.

Each round trip is what any Python client must do at the least: encode
the request (fastzk's codec, one call), one blocking ``send`` and
``recv`` per frame on a plain socket, and no decoding beyond the frame's
length (the last reply's xid and error code are checked after the round,
outside its time).  Beside the C loop the difference is the
interpreter's own cost; beside fastzk it is the client's.
"""

import resource
import socket
import struct
import sys
import time

from fastzk._core import codec
from fastzk.benchcases._aiolimit import SESSION_TIMEOUT_MS, first_host

_LEN = struct.Struct(">i")
_COUNT = struct.Struct(">i")
_HEADER = struct.Struct(">iqi")  # ReplyHeader: xid, zxid, err


def _checked(body, xid):
    """``body``, the reply to ``xid``.

    :raises RuntimeError: the reply of another xid, or an error code.
    """
    got, _, err = _HEADER.unpack_from(body, 0)
    if got != xid or err:
        raise RuntimeError("reply xid %d error %d to request %d"
                           % (got, err, xid))
    return body


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Loop(object):
    """One session over one blocking socket."""

    def __init__(self, hosts):
        self.sock = socket.create_connection(first_host(hosts), 15.0)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(None)
        self.next_xid = 1
        self._buf = b""
        self.sock.sendall(codec.encode_connect(0, SESSION_TIMEOUT_MS, 0,
                                               b"\x00" * 16, False))
        _, self.timeout_ms, self.session_id, _, _ = \
            codec.decode_connect_response(self._frame())
        self.last_io = time.monotonic()

    def _frame(self):
        """The next frame's body."""
        recv = self.sock.recv
        buf = self._buf
        while len(buf) < 4:
            buf += self._more(recv)
        (size,) = _LEN.unpack_from(buf, 0)
        while len(buf) < 4 + size:
            buf += self._more(recv)
        self._buf = buf[4 + size:]
        return buf[4:4 + size]

    def _reply(self, xid):
        """Read the reply to ``xid``; returns its body."""
        return _checked(self._frame(), xid)

    def ping_if_idle(self):
        """Keep the session alive across long pauses between commands
        (outside any timed part), as the C loop does."""
        if (time.monotonic() - self.last_io) * 1000.0 < self.timeout_ms / 3.0:
            return
        self.sock.sendall(codec.encode_ping())
        self._reply(codec.PING_XID)

    @staticmethod
    def _more(recv):
        data = recv(65536)
        if not data:
            raise EOFError("the server closed the connection")
        return data

    def children(self, path, n):
        """``n`` round trips; returns ``(wall_s, cpu_s, children)``."""
        encode = codec.encode_path_watch
        opcode = codec.GET_CHILDREN
        send = self.sock.send
        read = self._frame
        xid = self.next_xid
        cpu = _cpu_seconds()
        start = time.monotonic()
        body = b""
        for xid in range(xid, xid + n):
            send(encode(xid, opcode, path, False))
            body = read()
        wall = time.monotonic() - start
        used = _cpu_seconds() - cpu
        self.last_io = time.monotonic()
        self.next_xid = xid + 1
        (count,) = _COUNT.unpack_from(_checked(body, xid), 16)
        return wall, used, count

    def close(self):
        xid = self.next_xid
        self.sock.sendall(codec.encode_close(xid))
        self._reply(xid)
        self.sock.close()


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: %s HOSTS\n" % argv[0])
        return 1
    loop = Loop(argv[1])
    print("ready session_id=0x%x timeout_ms=%d"
          % (loop.session_id, loop.timeout_ms), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] != "children" or len(words) != 3:
            sys.stderr.write("unknown command: %s" % line)
            return 1
        n = int(words[2])
        try:
            loop.ping_if_idle()
            wall, cpu, count = loop.children(words[1], n)
        except (RuntimeError, OSError, EOFError) as exc:
            sys.stderr.write("_pyrounds: %s\n" % (exc,))
            return 1
        print("count=%d wall_s=%.6f cpu_s=%.6f children=%d"
              % (n, wall, cpu, count), flush=True)
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
