"""ZooKeeper wire codec, pure-Python implementation.

This module is the fallback of the compiled :mod:`fastzk._ccodec`; both
expose the same names with the same behaviour (the test suite runs against
each).  Use :mod:`fastzk._core` to get whichever one is active.

Encoders return one complete frame as :class:`bytes`: the 4-byte big-endian
length prefix, the request header (``int xid, int opcode``) where the
request has one, then the jute-serialised record.  Strings are encoded as
UTF-8; ``None`` encodes as the jute null (length -1).  An empty string
encodes as length 0, as jute and the Java client do (kazoo's own
serialisers send ``""`` as null).

Decoders take a *frame*, the body that follows the length prefix (as
:class:`bytes`, :class:`bytearray` or :class:`memoryview`), plus the offset
where the record starts (16, after the reply header, for replies).  They
raise :class:`fastzk.errors.ProtocolError` for truncated or malformed
input and never any other exception type for bad frame contents.

The code lives in parts named after the compiled twin's include files:
``_primitives`` (argument checking, writers), ``_encoders``,
``_decoders``, ``_sending`` (:func:`send_all`) and ``_reader``
(:class:`FrameReader`).
Import the codec from this module, which is its whole public face.
"""

from fastzk._codec._decoders import (
    decode_children,
    decode_children_stat,
    decode_connect_response,
    decode_data_stat,
    decode_multi,
    decode_reply_header,
    decode_stat,
    decode_string,
    decode_string_stat,
    decode_watch_event,
)
from fastzk._codec._encoders import (
    encode_add_watch,
    encode_close,
    encode_connect,
    encode_create,
    encode_delete,
    encode_path,
    encode_path_watch,
    encode_ping,
    encode_raw,
    encode_remove_watches,
    encode_set_data,
    encode_set_watches,
)
from fastzk._codec._reader import DEFAULT_MAX_FRAME, FrameReader
from fastzk._codec._sending import send_all
from fastzk.protocol.constants import (  # re-exported (see __all__)
    ADD_WATCH,
    AUTH,
    AUTH_XID,
    CHECK,
    CHECK_WATCHES,
    CLOSE,
    CREATE,
    CREATE2,
    DELETE,
    EXISTS,
    GET_ACL,
    GET_CHILDREN,
    GET_CHILDREN2,
    GET_DATA,
    MULTI,
    PING,
    PING_XID,
    RECONFIG,
    REMOVE_WATCHES,
    SET_ACL,
    SET_DATA,
    SET_WATCHES,
    SET_WATCHES2,
    SET_WATCHES_XID,
    SYNC,
    WATCH_XID,
)

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

#: Which implementation this module is: ``"python"`` or ``"cython"``.
IMPLEMENTATION = "python"
