"""The znode operations of :class:`~fastzk.aio.AsyncClient`: create, get,
set, delete, exists, get_children, sync, ACLs, auth and transactions, each
one request on the connection (the reads also as ``*_async`` futures)."""

from __future__ import annotations

import asyncio
from asyncio import _get_running_loop
from os.path import split as _split_path
from typing import Any, Callable, List, Optional, Sequence, Tuple

from kazoo.exceptions import ConnectionClosedError, NodeExistsError, NoNodeError
from kazoo.protocol import serialization as ks
from kazoo.protocol.paths import _prefix_root
from kazoo.protocol.states import WatchedEvent, ZnodeStat
from kazoo.security import ACL, OPEN_ACL_UNSAFE

from fastzk._core import codec
from fastzk.aio.driver import ReplyFuture
from fastzk.aio.lifecycle import Lifecycle
from fastzk.aio.transaction import AsyncTransaction
from fastzk.protocol.paths import parent_to_make, server_path
from fastzk.protocol import builders as _rq
from fastzk.protocol import session as _session
from fastzk.protocol.session import Request

__all__ = ["NodeCalls", "WatchFunc"]

#: A watch: a function or a coroutine function of one WatchedEvent.
WatchFunc = Callable[[WatchedEvent], Any]


class NodeCalls(Lifecycle):
    """The requests on znodes, with kazoo's names and arguments (a part of
    :class:`~fastzk.aio.AsyncClient`)."""

    chroot: str
    default_acl: Optional[Sequence[ACL]]

    # -- requests ----------------------------------------------------------

    def _full_path(self, path: str) -> str:
        if not isinstance(path, str):
            raise TypeError("Invalid type for 'path' (string expected)")
        return server_path(self.chroot, path)

    def unchroot(self, path: str) -> str:
        """Strip the chroot from a server path."""
        chroot = self.chroot
        if not chroot:
            return path
        if path == chroot:
            return "/"
        if path.startswith(chroot):
            return path[len(chroot):]
        return path

    def _unchroot_multi(self, results: Any) -> Any:
        return [self.unchroot(r) if isinstance(r, str) else r for r in results]

    def _call(self, build: Callable[..., Request], *args: Any
              ) -> "asyncio.Future[Any]":
        """Put the request ``build(*args, future)`` in flight; the future
        its reply completes."""
        future = ReplyFuture(loop=self._check_loop())
        req = build(*args, future)
        connection = self._connection
        if connection is None:
            future.set_exception(ConnectionClosedError(
                "Connection has been closed"))
        else:
            connection.submit(req)
        return future

    def _read(self, opcode: int, kind: int, path: str,
              watch: Optional[WatchFunc]) -> "asyncio.Future[Any]":
        """Put the read ``opcode`` of ``path`` in flight; the future its
        reply completes.  The path of every ``*_async`` read, so it is
        :meth:`_call` written out for speed."""
        full = self._full_path(path)
        watcher = self._watcher(watch) if watch else None
        # asyncio's own check, without get_running_loop's exception when
        # there is no loop (then _check_loop raises the clear error).
        loop = _get_running_loop()
        if loop is None or loop is not self._loop:
            loop = self._check_loop()
        future = ReplyFuture(loop=loop)
        connection = self._connection
        if connection is None:
            future.set_exception(ConnectionClosedError(
                "Connection has been closed"))
        else:
            connection.submit(Request(opcode, None, kind, future, full,
                                      watcher))
        return future

    def _watcher(self, watch: Optional[WatchFunc]) -> Optional[WatchFunc]:
        if watch and not callable(watch):
            raise TypeError("Invalid type for 'watch' (must be a callable)")
        return watch or None

    # The reads come twice: as coroutines (kazoo's names), and as *_async
    # methods that put the request in flight at once and return the
    # reply's asyncio.Future, as kazoo's *_async return an IAsyncResult.
    # Gathering futures pipelines without a task per request.

    def get_async(self, path: str, watch: Optional[WatchFunc] = None
                  ) -> "asyncio.Future[Tuple[bytes, ZnodeStat]]":
        """Put a getData for ``path`` in flight now; the future of its
        ``(data, stat)`` (NoNodeError when it does not exist)."""
        return self._read(codec.GET_DATA, _session.R_DATA_STAT, path, watch)

    async def get(self, path: str, watch: Optional[WatchFunc] = None
                  ) -> Tuple[bytes, ZnodeStat]:
        """The data and stat of ``path``; raises NoNodeError."""
        return await self.get_async(path, watch)

    def exists_async(self, path: str, watch: Optional[WatchFunc] = None
                     ) -> "asyncio.Future[Optional[ZnodeStat]]":
        """Put an exists for ``path`` in flight now; the future of its
        stat, or None when it does not exist."""
        return self._read(codec.EXISTS, _session.R_STAT, path, watch)

    async def exists(self, path: str, watch: Optional[WatchFunc] = None
                     ) -> Optional[ZnodeStat]:
        """The stat of ``path``, or None when it does not exist."""
        return await self.exists_async(path, watch)

    def get_children_async(self, path: str,
                           watch: Optional[WatchFunc] = None,
                           include_data: bool = False
                           ) -> "asyncio.Future[Any]":
        """Put a getChildren for ``path`` in flight now; the future of its
        children names (with its stat when ``include_data``)."""
        if not isinstance(include_data, bool):
            raise TypeError("Invalid type for 'include_data' (bool expected)")
        if include_data:
            return self._read(codec.GET_CHILDREN2, _session.R_CHILDREN_STAT,
                              path, watch)
        return self._read(codec.GET_CHILDREN, _session.R_CHILDREN, path,
                          watch)

    async def get_children(self, path: str, watch: Optional[WatchFunc] = None,
                           include_data: bool = False) -> Any:
        """The children names of ``path`` (with its stat when
        ``include_data``)."""
        return await self.get_children_async(path, watch, include_data)

    async def set(self, path: str, value: Optional[bytes],
                  version: int = -1) -> ZnodeStat:
        """Set the data of ``path``; returns the new stat."""
        if value is not None and not isinstance(value, bytes):
            raise TypeError("Invalid type for 'value' (must be a byte string)")
        if not isinstance(version, int):
            raise TypeError("Invalid type for 'version' (int expected)")
        full = self._full_path(path)
        result: ZnodeStat = await self._call(_rq.set_data, full, value,
                                             version)
        return result

    async def sync(self, path: str) -> str:
        """Let the connected server catch up with the leader on ``path``."""
        full = self._full_path(path)
        result: str = await self._call(_rq.sync, full)
        return self.unchroot(result)

    async def delete(self, path: str, version: int = -1,
                     recursive: bool = False) -> bool:
        """Delete ``path`` (with its descendants when ``recursive``)."""
        if not isinstance(recursive, bool):
            raise TypeError("Invalid type for 'recursive' (bool expected)")
        if not isinstance(version, int):
            raise TypeError("Invalid type for 'version' (int expected)")
        if recursive:
            await self._delete_recursive(path)
            return True
        full = self._full_path(path)
        result: bool = await self._call(_rq.delete, full, version)
        return result

    async def _delete_recursive(self, path: str) -> None:
        try:
            children = await self.get_children(path)
        except NoNodeError:
            return
        base = path.rstrip("/")
        if children:
            await asyncio.gather(*(self._delete_recursive(base + "/" + child)
                                   for child in children))
        try:
            await self.delete(path)
        except NoNodeError:
            pass

    async def create(self, path: str, value: Optional[bytes] = b"",
                     acl: Optional[Sequence[ACL]] = None,
                     ephemeral: bool = False, sequence: bool = False,
                     makepath: bool = False, include_data: bool = False
                     ) -> Any:
        """Create a node; returns its path (and stat with
        ``include_data``), as kazoo's ``create``."""
        acl = acl or self.default_acl
        flags = _rq.create_flags(path, value, acl, ephemeral, sequence,
                                 makepath, include_data)
        full = _prefix_root(self.chroot, path, trailing=sequence)
        use_acl = acl or OPEN_ACL_UNSAFE

        def build(r: ReplyFuture) -> Request:
            return _rq.create(full, value, use_acl, flags, include_data, r)

        try:
            result = await self._call(build)
        except NoNodeError:
            if not makepath:
                raise
            parent = parent_to_make(path, sequence)
            await self.ensure_path(parent, acl)
            result = await self._call(build)
        if include_data:
            return self.unchroot(result[0]), result[1]
        return self.unchroot(result)

    async def ensure_path(self, path: str,
                          acl: Optional[Sequence[ACL]] = None) -> bool:
        """Create ``path`` and its missing ancestors."""
        acl = acl or self.default_acl
        if await self.exists(path):
            return True
        parent, node = _split_path(path)
        if node and parent != path:
            await self.ensure_path(parent, acl)
        try:
            await self.create(path, acl=acl)
        except NodeExistsError:
            pass
        return True

    async def get_acls(self, path: str) -> Tuple[List[ACL], ZnodeStat]:
        """The ACL and stat of ``path``."""
        full = self._full_path(path)
        result: Tuple[List[ACL], ZnodeStat] = await self._call(
            _rq.kazoo_request, ks.GetACL(full))
        return result

    async def set_acls(self, path: str, acls: Sequence[ACL],
                       version: int = -1) -> ZnodeStat:
        """Set the ACL of ``path``; returns its stat."""
        if isinstance(acls, ACL) or not isinstance(acls, (tuple, list)):
            raise TypeError("Invalid type for 'acl' (acl must be a tuple/list"
                            " of ACL's)")
        full = self._full_path(path)
        result: ZnodeStat = await self._call(
            _rq.kazoo_request, ks.SetACL(full, acls, version))
        return result

    async def add_auth(self, scheme: str, credential: str) -> bool:
        """Send credentials (kept and sent again on every reconnect)."""
        if not isinstance(scheme, str):
            raise TypeError("Invalid type for 'scheme' (string expected)")
        if not isinstance(credential, str):
            raise TypeError("Invalid type for 'credential' (string expected)")
        self.auth_data.add((scheme, credential))
        connection = self._connection
        if connection is not None:
            connection.auth_data = list(self.auth_data)
        await self._call(_rq.kazoo_request, ks.Auth(0, scheme, credential))
        return True

    def transaction(self) -> AsyncTransaction:
        """A transaction; ``await txn.commit()`` sends it."""
        return AsyncTransaction(self)

    async def _commit(self, operations: List[Any]) -> List[Any]:
        result: List[Any] = await self._call(
            _rq.kazoo_request, ks.Transaction(operations))
        return result
