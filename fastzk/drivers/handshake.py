"""Opening a connection of a session: from TCP connect to ready.

:func:`open_connection` connects to one server through a transport and
runs the session's handshake on the new socket, moving the frames the
session machine asks for: the ConnectRequest and its ConnectResponse, the
SASL exchange (first: ZooKeeper takes the SASL identity only from an
exchange that comes before anything else), the AuthPackets of ``auth_data``
and the SetWatches/SetWatches2 batches that restore the session's watches.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Mapping, Optional, Tuple

from kazoo.exceptions import ConnectionDropped

from fastzk._core import codec
from fastzk.drivers.transport import (
    STOP_CHECK_INTERVAL,
    Transport,
    TransportStopped,
)
from fastzk.protocol import constants as zk
from fastzk.protocol.session import AbandonedSession, SessionMachine

__all__ = ["open_connection"]


def open_connection(transport: Transport, machine: SessionMachine,
                    host: str, address: str, port: int, timeout: float,
                    stopped: Callable[[], bool],
                    sasl_options: Optional[Mapping[str, Any]],
                    auth_data: Iterable[Tuple[str, Any]]
                    ) -> Tuple[Any, Any, bool]:
    """Connect to ``address:port`` (resolved from ``host``) and run the
    handshake, each step within ``timeout`` seconds.

    :returns: ``(sock, frames, read_only)``: the connected socket, its
              frame reader (which may hold frames already read), and
              whether the server is read-only.
    :raises TransportStopped: ``stopped()`` became true meanwhile.
    :raises SessionExpiredError: the server has no such session.
    :raises AuthFailedError: the server refused the authentication.
    :raises OSError, ConnectionDropped, ProtocolError: the attempt failed.
    """
    sock = transport.connect(address, port, timeout, stopped,
                             server_name=host)
    try:
        frames = codec.FrameReader(zk.MAX_FRAME)
        sock.sendall(machine.connect_request())
        frame = _read_one(sock, frames, timeout, stopped)
        try:
            read_only = machine.receive_connect_response(frame, time.monotonic())
        except AbandonedSession as exc:
            # The client already declared this session lost (its locks are
            # reported lost): end it on the server so its ephemeral nodes
            # go now, and open a fresh one.
            sock.sendall(exc.farewell)
            raise
        # Sends wait at most the read timeout (a Python socket timeout).
        # Reads wait in FrameReader.read_from.
        sock.settimeout(machine.read_timeout)
        machine.sasl_options = sasl_options
        request = machine.start_sasl(host)
        while request is not None:
            sock.sendall(request)
            request = machine.receive_sasl_reply(
                _read_one(sock, frames, timeout, stopped), time.monotonic())
        for scheme, credential in list(auth_data):
            sock.sendall(machine.auth_frame(scheme, credential))
            machine.receive_auth_reply(_read_one(sock, frames, timeout, stopped))
        # One-shot watches travel with SetWatches and relativeZxid = the last
        # zxid this client saw, so the server fires those whose node changed
        # meanwhile; persistent ones in SetWatches2.  Their replies (xid -8)
        # are read by the normal reply path.
        for batch in machine.set_watches_frames():
            sock.sendall(batch)
        # From here on a reader waiting the whole read timeout does so in
        # one recv() (the compiled reader; the other keeps polling).
        frames.block_reads(sock, machine.read_timeout)
    except BaseException:
        sock.close()
        raise
    return sock, frames, read_only


def _read_one(sock: Any, frames: Any, timeout: float,
              stopped: Callable[[], bool]) -> bytes:
    """The next frame of the handshake; waits at most ``timeout``, and
    gives up as soon as ``stopped()``."""
    deadline = time.monotonic() + timeout
    frame: Optional[bytes] = frames.next_frame()
    while frame is None:
        if stopped():
            raise TransportStopped()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ConnectionDropped("timed out waiting for the server")
        frames.read_from(sock, min(remaining, STOP_CHECK_INTERVAL), 0)
        frame = frames.next_frame()
    return frame
