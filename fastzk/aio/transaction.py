"""Transactions of the asyncio client: operations collected, then sent
as one multi request by an awaited :meth:`AsyncTransaction.commit`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional, Sequence

from kazoo.exceptions import ConfigurationError
from kazoo.protocol import serialization as ks
from kazoo.protocol.paths import _prefix_root
from kazoo.security import ACL, OPEN_ACL_UNSAFE

if TYPE_CHECKING:
    from fastzk.aio.nodecalls import NodeCalls

__all__ = ["AsyncTransaction"]


class AsyncTransaction(object):
    """kazoo's ``TransactionRequest`` for :class:`~fastzk.aio.AsyncClient`:
    the same methods, with ``await commit()``.  The result is kazoo's: one
    entry per operation, an exception instance for each failed one."""

    def __init__(self, client: "NodeCalls") -> None:
        self.client = client
        self.operations: List[Any] = []
        self.committed = False

    def _full(self, path: str, trailing: bool = False) -> str:
        if not isinstance(path, str):
            raise TypeError("Invalid type for 'path' (string expected)")
        full: str = _prefix_root(self.client.chroot, path, trailing=trailing)
        return full

    def _add(self, request: Any) -> None:
        if self.committed:
            raise ValueError("Transaction already committed")
        self.operations.append(request)

    def create(self, path: str, value: bytes = b"",
               acl: Optional[Sequence[ACL]] = None, ephemeral: bool = False,
               sequence: bool = False) -> None:
        """Add a create to the transaction."""
        if value is not None and not isinstance(value, bytes):
            raise TypeError("Invalid type for 'value' (must be a byte string)")
        acl = acl or self.client.default_acl or OPEN_ACL_UNSAFE
        flags = (1 if ephemeral else 0) | (2 if sequence else 0)
        self._add(ks.Create(self._full(path, sequence), value, acl, flags))

    def delete(self, path: str, version: int = -1) -> None:
        """Add a delete to the transaction."""
        if not isinstance(version, int):
            raise TypeError("Invalid type for 'version' (int expected)")
        self._add(ks.Delete(self._full(path), version))

    def set_data(self, path: str, value: bytes, version: int = -1) -> None:
        """Add a setData to the transaction."""
        if not isinstance(value, bytes):
            raise TypeError("Invalid type for 'value' (must be a byte string)")
        self._add(ks.SetData(self._full(path), value, version))

    def check(self, path: str, version: int) -> None:
        """Add a version check to the transaction."""
        if not isinstance(version, int):
            raise TypeError("Invalid type for 'version' (int expected)")
        self._add(ks.CheckVersion(self._full(path), version))

    async def commit(self) -> List[Any]:
        """Send the transaction; its results, one per operation."""
        if self.committed:
            raise ValueError("Transaction already committed")
        if not self.operations:
            raise ConfigurationError("an empty transaction")
        self.committed = True
        return await self.client._commit(self.operations)

    async def __aenter__(self) -> "AsyncTransaction":
        return self

    async def __aexit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            await self.commit()
