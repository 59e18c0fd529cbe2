"""ZooKeeper frames as the fault-injecting proxy sees them.

Every frame is a 4-byte big-endian length then the body.  After the
handshake a request body starts with ``xid:int, type:int`` and a reply body
with ``xid:int, zxid:long, err:int``.  These helpers read those fields
(for the predicates given to :class:`fastzk.testing.proxy.TcpProxy`) and
build a whole frame from a body.
"""

import struct
from typing import Callable, Optional, Union

__all__ = [
    "Predicate",
    "encode_frame",
    "reply_err",
    "reply_xid",
    "reply_zxid",
    "request_opcode",
    "request_xid",
]

_INT = struct.Struct(">i")

# A frame body, or any buffer holding one.
_Body = Union[bytes, bytearray, memoryview]
#: A predicate on a frame body.
Predicate = Callable[[bytes], object]


def request_xid(body: _Body) -> int:
    """xid of a request frame body (offset 0)."""
    xid: int = _INT.unpack_from(body, 0)[0]
    return xid


def request_opcode(body: _Body) -> Optional[int]:
    """Opcode of a request frame body (the int at offset 4), e.g. 2 for
    delete, 14 for multi, 11 for ping, -11 for closeSession."""
    if len(body) < 8:
        return None
    opcode: int = _INT.unpack_from(body, 4)[0]
    return opcode


def reply_xid(body: _Body) -> int:
    """xid of a reply frame body (offset 0): -1 watch event, -2 ping."""
    xid: int = _INT.unpack_from(body, 0)[0]
    return xid


def reply_zxid(body: _Body) -> int:
    """zxid of a reply frame body (the long at offset 4)."""
    zxid: int = struct.unpack_from(">q", body, 4)[0]
    return zxid


def reply_err(body: _Body) -> int:
    """Error code of a reply frame body (the int at offset 12)."""
    err: int = _INT.unpack_from(body, 12)[0]
    return err


def encode_frame(body: _Body) -> bytes:
    """``body`` with its 4-byte big-endian length prefix: a whole frame."""
    body = bytes(body)
    return _INT.pack(len(body)) + body

