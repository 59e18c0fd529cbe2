"""The operations of fastzk's client that only fastzk's recipes use.

:class:`RecipeOperations` holds what
:class:`fastzk.kazooface.fastpath.FastPath` gives the recipes (locks,
guaranteed deletes, watchers): a deadline on synchronous calls, a create
and a read in one round trip, watched children lists.  The recipes reach
them through :func:`fastzk.kazooface.fastpath.fast_path_of` only.

Internal: a part of :class:`fastzk.client.KazooClient`.
"""

import time
from typing import List, Optional, Tuple

from kazoo.security import OPEN_ACL_UNSAFE
from kazoo.protocol.paths import _prefix_root
from kazoo.protocol.states import ZnodeStat

from fastzk._core import codec
from fastzk.kazooface.base import ClientBase
from fastzk.drivers.waiter import Waiter
from fastzk.drivers.engine import Engine
from fastzk.protocol import builders as _rq
from fastzk.protocol import session as _session
from fastzk.protocol.session import Request

__all__ = ["RecipeOperations"]


class RecipeOperations(ClientBase):
    """fastzk-only operations, for :class:`fastzk.kazooface.fastpath.FastPath`.

    Internal: a part of :class:`fastzk.client.KazooClient`.
    """

    # Lock recipes bound their synchronous calls by a deadline with this
    # (see fastzk.drivers.waiter.bounded); kazoo's client has no such thing.
    _bounded = staticmethod(Engine.bounded)

    def _watched_children(self, path: str) -> List[str]:
        """The children of ``path``, from the connection's
        :class:`~fastzk.protocol.childview.ChildrenView` when a child watch keeps
        them current, else read with such a watch (for the lock recipes'
        non-blocking check).  The list returned must not be changed."""
        full = self._full_path(path)
        view = self._connection.children_view
        children: Optional[List[str]] = view.get(full)
        if children is not None:
            # Answered without I/O: give up the GIL for a moment, or a
            # caller looping on this answer starves the reader thread that
            # delivers the watch events which would change it (CPython
            # takes the GIL from a busy thread only every 5 ms).
            time.sleep(0)
            return children
        token = view.token()
        # Watched (by the view, not by a function) when the view takes it.
        request = Request(codec.GET_CHILDREN, None, _session.R_CHILDREN,
                          Waiter(), full)
        request.view_token = token
        children = self._connection.call(request)
        return children

    def _create_and_list(
            self, path: str, value: Optional[bytes], ephemeral: bool
    ) -> Tuple[str, ZnodeStat, Optional[List[str]]]:
        """Create a sequential node at ``path`` and read its parent's
        children, in one round trip (for the lock recipes).

        Both requests are written before either reply is awaited: the
        server runs a session's requests in the order they were sent
        (ZooKeeper's FIFO client order), so the list includes the new node
        and every contender created before it.

        :returns: ``(created_path, stat, children)``; ``children`` is None
                  when the read failed after the create succeeded (the
                  caller reads again).
        :raises: the create's error (e.g. NoNodeError when the parent is
                 missing: nothing was created), or the read's timeout
                 inside :meth:`_bounded` when the create's reply is not in.
        """
        full = _prefix_root(self.chroot, path, trailing=True)
        parent = full.rsplit("/", 1)[0] or "/"
        flags = 3 if ephemeral else 2  # sequential, maybe ephemeral
        create = _rq.create(full, value, self.default_acl or OPEN_ACL_UNSAFE,
                            flags, True, Waiter())
        listing = _rq.read(codec.GET_CHILDREN, _session.R_CHILDREN, parent,
                           None, Waiter())
        connection = self._connection
        # This thread reads both replies: no reader is woken for the first.
        connection.submit(create, False)
        children = None
        try:
            children = connection.call(listing)
        except Exception:
            if not create.result.done:
                raise
        created, stat = create.result.result()
        return self.unchroot(created), stat, children
