"""Types of fastzk's compiled ZooKeeper wire codec (built from
``src/_ccodec.pyx``).

The pure-Python :mod:`fastzk._codec` exposes the same names with the same
behaviour; see its docstrings.  ``tests/test_stub.py`` checks that this
stub names exactly what the compiled module exports.
"""

import socket
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

from kazoo.protocol.states import ZnodeStat

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

# A frame body, or any buffer holding one.
_Frame = Union[bytes, bytearray, memoryview]
# A node's data: bytes or any bytes-like object; None is the null buffer.
_Data = Optional[Union[bytes, bytearray, memoryview]]
# An ACL: a kazoo.security.ACL, or a (perms, scheme, id) tuple.
_ACL = Union[Any, Tuple[int, Optional[str], Optional[str]]]

IMPLEMENTATION: str

CREATE: int
DELETE: int
EXISTS: int
GET_DATA: int
SET_DATA: int
GET_ACL: int
SET_ACL: int
GET_CHILDREN: int
SYNC: int
PING: int
GET_CHILDREN2: int
CHECK: int
MULTI: int
CREATE2: int
RECONFIG: int
CHECK_WATCHES: int
REMOVE_WATCHES: int
AUTH: int
SET_WATCHES: int
SET_WATCHES2: int
ADD_WATCH: int
CLOSE: int

WATCH_XID: int
PING_XID: int
AUTH_XID: int
SET_WATCHES_XID: int

DEFAULT_MAX_FRAME: int

def encode_connect(last_zxid: int, timeout_ms: int, session_id: int,
                   passwd: _Data, read_only: bool) -> bytes: ...
def encode_path_watch(xid: int, opcode: int, path: str,
                      watch: bool) -> bytes: ...
def encode_path(xid: int, opcode: int, path: str) -> bytes: ...
def encode_create(xid: int, opcode: int, path: str, data: _Data,
                  acl: Optional[Iterable[_ACL]], flags: int) -> bytes: ...
def encode_delete(xid: int, path: str, version: int) -> bytes: ...
def encode_set_data(xid: int, path: str, data: _Data,
                    version: int) -> bytes: ...
def encode_add_watch(xid: int, path: str, mode: int) -> bytes: ...
def encode_remove_watches(xid: int, path: str,
                          watcher_type: int) -> bytes: ...
def encode_set_watches(relative_zxid: int, data_paths: Iterable[str],
                       exist_paths: Iterable[str], child_paths: Iterable[str],
                       persistent_paths: Iterable[str] = ...,
                       recursive_paths: Iterable[str] = ...
                       ) -> List[bytes]: ...
def encode_ping() -> bytes: ...
def encode_close(xid: int) -> bytes: ...
def encode_raw(xid: int, opcode: int, body: _Frame) -> bytes: ...

def decode_reply_header(frame: _Frame) -> Tuple[int, int, int]: ...
def decode_connect_response(
        frame: _Frame) -> Tuple[int, int, int, Optional[bytes], bool]: ...
def decode_stat(frame: _Frame, offset: int) -> ZnodeStat: ...
def decode_data_stat(frame: _Frame,
                     offset: int) -> Tuple[Optional[bytes], ZnodeStat]: ...
# A null string inside the vector decodes as None.
def decode_children(frame: _Frame, offset: int) -> List[Optional[str]]: ...
def decode_children_stat(
        frame: _Frame,
        offset: int) -> Tuple[List[Optional[str]], ZnodeStat]: ...
def decode_string(frame: _Frame, offset: int) -> Optional[str]: ...
def decode_string_stat(frame: _Frame,
                       offset: int) -> Tuple[Optional[str], ZnodeStat]: ...
def decode_watch_event(frame: _Frame,
                       offset: int) -> Tuple[int, int, Optional[str]]: ...
def decode_multi(frame: _Frame, offset: int) -> List[Tuple[int, Any]]: ...

def send_all(sock: socket.socket, data: _Frame) -> None: ...

class FrameReader:
    max_frame: int
    @property
    def spin_off_cpu_ns(self) -> int: ...
    def __init__(self, max_frame: int = ...) -> None: ...
    def buffered(self) -> int: ...
    def feed(self, data: _Frame) -> None: ...
    def next_frame(self) -> Optional[bytes]: ...
    def block_reads(self, sock: socket.socket, timeout: float) -> bool: ...
    def read_from(self, sock: socket.socket, timeout: Optional[float],
                  spin_us: int = ...) -> int: ...
