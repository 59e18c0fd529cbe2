"""Socket sending of the pure-Python codec.

Part of :mod:`fastzk._codec` (import the codec from there), beside
the compiled twin's ``sending.pxi``: :func:`send_all`.
"""


def send_all(sock, data):
    """Send all of ``data`` (a bytes-like object) on ``sock``.

    ``sock.sendall``; the compiled core first tries a non-blocking send
    without releasing the GIL.

    :raises OSError: as ``socket.sendall`` does.
    """
    sock.sendall(data)
