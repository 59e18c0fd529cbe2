"""Ending a client's session from outside, as a real expiry would."""

import socket
import struct
from typing import List, Tuple, Union

__all__ = ["expire_session"]

def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        if not data:
            raise ConnectionError("connection closed by the server")
        buf.extend(data)
    return bytes(buf)


def _recv_frame(sock: socket.socket) -> bytes:
    (length,) = struct.unpack(">i", _recv_exact(sock, 4))
    return _recv_exact(sock, length)


def _split_hosts(hosts: str) -> List[Tuple[str, int]]:
    hosts = hosts.split("/", 1)[0]
    result = []
    for item in hosts.split(","):
        item = item.strip()
        if not item:
            continue
        host, _, port = item.rpartition(":")
        if not host:
            host, port = port, "2181"
        result.append((host.strip("[]"), int(port)))
    return result


def expire_session(hosts: str, session_id: int, passwd: Union[bytes, str],
                   timeout_ms: int = 10000, timeout: float = 10.0) -> bool:
    """Make the server end a client's session, as a real expiry would.

    Opens a second raw connection with the same session id and password and
    sends closeSession on it; the server then closes the session and every
    connection of it, so the owner sees SESSION_EXPIRED (kazoo: LOST) when it
    reconnects.  ``hosts`` is a connection string (a chroot is ignored).
    ``session_id``/``passwd`` are what kazoo's ``client.client_id`` gives.
    Returns True if the session was closed, False if it had already expired.
    """
    if isinstance(passwd, str):
        passwd = passwd.encode("latin-1")
    errors = []
    for host, port in _split_hosts(hosts):
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            errors.append("%s:%d: %r" % (host, port, exc))
            continue
        try:
            sock.settimeout(timeout)
            body = struct.pack(">iqiqi", 0, 0, timeout_ms, session_id,
                               len(passwd)) + passwd + b"\x00"
            sock.sendall(struct.pack(">i", len(body)) + body)
            reply = _recv_frame(sock)
            _, negotiated, got_session = struct.unpack_from(">iiq", reply)
            if negotiated <= 0:
                return False  # already expired
            if got_session != session_id:
                raise RuntimeError(
                    "server answered with session 0x%x instead of 0x%x"
                    % (got_session, session_id)
                )
            request = struct.pack(">ii", 1, -11)  # xid 1, closeSession
            sock.sendall(struct.pack(">i", len(request)) + request)
            # The server answers closeSession, then closes the connection.
            try:
                while True:
                    frame = _recv_frame(sock)
                    xid, _zxid, err = struct.unpack_from(">iqi", frame)
                    if xid == 1:
                        if err != 0:
                            raise RuntimeError(
                                "closeSession of 0x%x failed: error %d"
                                % (session_id, err)
                            )
                        break
            except (ConnectionError, socket.timeout):
                pass
            return True
        except (OSError, struct.error) as exc:
            errors.append("%s:%d: %r" % (host, port, exc))
        finally:
            sock.close()
    raise RuntimeError(
        "could not expire session 0x%x via %s: %s"
        % (session_id, hosts, "; ".join(errors))
    )
