"""One request of a session, as the session machine tracks it.

A :class:`Request` says what to send (a function of the xid returning the
frame, or nothing for a read the session machine encodes itself), how its
reply decodes (one of the ``R_*`` kinds) and which result object (a
:class:`Completion`) hears of it.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Protocol

__all__ = [
    "Completion",
    "Request",
    "R_VOID", "R_STAT", "R_DATA_STAT", "R_CHILDREN", "R_CHILDREN_STAT",
    "R_STRING", "R_STRING_STAT", "R_MULTI", "R_KAZOO", "R_CLOSE",
]

# How replies are decoded (Request.kind).
R_VOID = 0  # delete, setWatches, addWatch, removeWatches, check
R_STAT = 1  # setData, exists
R_DATA_STAT = 2  # getData
R_CHILDREN = 3  # getChildren
R_CHILDREN_STAT = 4  # getChildren2
R_STRING = 5  # create, sync
R_STRING_STAT = 6  # create2
R_MULTI = 7
R_KAZOO = 8  # a kazoo request object decodes its own reply
R_CLOSE = 9


class Completion(Protocol):
    """The result object of one request."""

    def set(self, value: Any = None) -> None: ...

    def set_exception(self, error: BaseException) -> None: ...


class Request(object):
    """One request: what to send, how to read its reply, whom to tell.

    :param opcode: the ZooKeeper opcode.
    :param frame: a function of the xid returning the encoded frame; None
                  for a read of ``path`` (getData, exists, getChildren,
                  getChildren2), which the session machine encodes with
                  the watch flag set when the read leaves a watch (a
                  ``watcher``, or a ``view_token``).
    :param kind: how the reply decodes (one of the ``R_*`` values).
    :param result: completed with the decoded reply or its exception.
    :param path: the node path, for watches.
    :param watcher: the watch function the request leaves, if any.
    """

    __slots__ = (
        "xid",
        "opcode",
        "frame",
        "kind",
        "path",
        "watcher",
        "result",
        "kazoo_request",
        "watch_kind",
        "view_token",
    )

    def __init__(self, opcode: int, frame: Optional[Callable[[int], bytes]],
                 kind: int,
                 result: Any, path: Optional[str] = None,
                 watcher: Any = None) -> None:
        self.xid = 0
        self.opcode = opcode
        self.frame = frame
        self.kind = kind
        self.result = result
        self.path = path
        self.watcher = watcher
        self.kazoo_request: Any = None
        # For addWatch and removeWatches: the registry kind(s) to add or
        # drop when the server confirms.
        self.watch_kind: Any = None
        # For a watched getChildren feeding the ChildrenView: its token.
        self.view_token: Any = None
