"""Builders of :class:`~fastzk.protocol.session.Request` objects.

Each function checks its arguments as kazoo does (same ``TypeError``
messages), takes the server path (chroot already applied) and the result
object the reply completes, and returns the request to hand to a driver.
They know nothing of threads or event loops, so any driver of the
:class:`~fastzk.protocol.session.SessionMachine` can use them.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Optional, Sequence

from kazoo.protocol import serialization as ks
from kazoo.security import ACL

from fastzk._core import codec
from fastzk.protocol import session as _session
from fastzk.protocol.session import Request
from fastzk.protocol import watches as _watches

__all__ = [
    "read", "create_flags", "create",
    "delete", "set_data", "sync", "add_watch", "remove_watches",
    "kazoo_request",
]


def _encode_create(opcode: int, path: str, data: Optional[bytes],
                   acl: Any, flags: int, xid: int) -> bytes:
    return codec.encode_create(xid, opcode, path, data, acl, flags)


def _encode_delete(path: str, version: int, xid: int) -> bytes:
    return codec.encode_delete(xid, path, version)


def _encode_set_data(path: str, data: Optional[bytes], version: int,
                     xid: int) -> bytes:
    return codec.encode_set_data(xid, path, data, version)


def _encode_path(opcode: int, path: str, xid: int) -> bytes:
    return codec.encode_path(xid, opcode, path)


def _encode_add_watch(path: str, mode: int, xid: int) -> bytes:
    return codec.encode_add_watch(xid, path, mode)


def _encode_remove_watches(path: str, watcher_type: int, xid: int) -> bytes:
    return codec.encode_remove_watches(xid, path, watcher_type)


def _encode_raw(opcode: int, body: bytes, xid: int) -> bytes:
    return codec.encode_raw(xid, opcode, body)


def read(opcode: int, kind: int, full: str, watcher: Any,
         result: Any) -> Request:
    """getData / exists / getChildren(2) on ``full``, leaving ``watcher``
    (a callable, or None for no watch).  The session machine encodes it
    (see :class:`~fastzk.protocol.request.Request`)."""
    return Request(opcode, None, kind, result, full, watcher)


def create_flags(path: Any, value: Any, acl: Any, ephemeral: Any,
                 sequence: Any, makepath: Any, include_data: Any) -> int:
    """Check the arguments of a ``create`` call as kazoo does (its
    ``TypeError`` messages) and return the node's CreateMode flags."""
    if not isinstance(path, str):
        raise TypeError("Invalid type for 'path' (string expected)")
    if acl and (isinstance(acl, ACL) or not isinstance(acl, (tuple, list))):
        raise TypeError("Invalid type for 'acl' (acl must be a tuple/list"
                        " of ACL's")
    if value is not None and not isinstance(value, bytes):
        raise TypeError("Invalid type for 'value' (must be a byte string)")
    for name, flag in (("ephemeral", ephemeral), ("sequence", sequence),
                       ("makepath", makepath), ("include_data", include_data)):
        if not isinstance(flag, bool):
            raise TypeError("Invalid type for '%s' (bool expected)" % name)
    return (1 if ephemeral else 0) | (2 if sequence else 0)


def create(full: str, value: Optional[bytes], acl: Sequence[Any], flags: int,
           include_data: bool, result: Any) -> Request:
    """create (returns the path) or create2 (path and stat)."""
    opcode = codec.CREATE2 if include_data else codec.CREATE
    kind = _session.R_STRING_STAT if include_data else _session.R_STRING
    return Request(opcode, partial(_encode_create, opcode, full, value, acl,
                                   flags), kind, result)


def delete(full: str, version: int, result: Any) -> Request:
    """delete ``full`` at ``version`` (-1: any)."""
    return Request(codec.DELETE, partial(_encode_delete, full, version),
                   _session.R_VOID, result)


def set_data(full: str, value: Optional[bytes], version: int,
             result: Any) -> Request:
    """setData; the reply is the new stat."""
    return Request(codec.SET_DATA, partial(_encode_set_data, full, value,
                                           version), _session.R_STAT, result)


def sync(full: str, result: Any) -> Request:
    """sync; the reply is the path."""
    return Request(codec.SYNC, partial(_encode_path, codec.SYNC, full),
                   _session.R_STRING, result)


def add_watch(full: str, watcher: Any, recursive: bool,
              result: Any) -> Request:
    """addWatch (ZooKeeper 3.6+), persistent or persistent recursive."""
    mode = 1 if recursive else 0  # AddWatchMode.PERSISTENT(_RECURSIVE)
    req = Request(codec.ADD_WATCH, partial(_encode_add_watch, full, mode),
                  _session.R_VOID, result, full, watcher)
    req.watch_kind = _watches.RECURSIVE if recursive else _watches.PERSISTENT
    return req


def remove_watches(full: str, watcher_type: int, result: Any) -> Request:
    """removeWatches of ``watcher_type`` (a WatcherType value)."""
    req = Request(codec.REMOVE_WATCHES,
                  partial(_encode_remove_watches, full, int(watcher_type)),
                  _session.R_VOID, result, full)
    req.watch_kind = _watches.KINDS_REMOVED_BY[_watches.WatcherType(watcher_type)]
    return req


def kazoo_request(request: Any, result: Any) -> Request:
    """A request serialized by one of kazoo's request classes (ACLs, auth,
    transactions); the reply is decoded by the same object."""
    body = bytes(request.serialize())
    opcode = request.type
    req = Request(opcode, partial(_encode_raw, opcode, body),
                  _session.R_KAZOO, result)
    req.kazoo_request = request
    return req


# Re-exported for callers building kazoo request objects.
Transaction = ks.Transaction
