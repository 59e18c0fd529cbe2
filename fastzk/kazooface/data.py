"""The data operations of fastzk's client: create, get, set, delete,
exists, get_children and their asynchronous variants.

:class:`DataOperations` builds each of these requests once, for the
synchronous method (a :class:`~fastzk.drivers.waiter.Waiter` the calling
thread reads) and the asynchronous one (kazoo's async result) alike, with
kazoo's checks and messages.

Internal: a part of :class:`fastzk.client.KazooClient`.
"""

from typing import Any, List, Optional, Sequence, Tuple, Union

from kazoo.exceptions import NoNodeError
from kazoo.security import ACL, OPEN_ACL_UNSAFE
from kazoo.protocol.paths import _prefix_root
from kazoo.interfaces import IAsyncResult
from kazoo.protocol.states import ZnodeStat

from fastzk._core import codec
from fastzk.kazooface.base import ClientBase
from fastzk.drivers.waiter import Waiter
from fastzk.protocol import builders as _rq
from fastzk.protocol.paths import parent_to_make
from fastzk.protocol import session as _session
from fastzk.protocol.session import Request
from fastzk.protocol.watches import WatchFunc

__all__ = ["DataOperations"]


class DataOperations(ClientBase):
    """kazoo's data operations, encoded by fastzk's core.

    Internal: a part of :class:`fastzk.client.KazooClient`.
    """

    # Each hot request is built once, for the synchronous method (with a
    # Waiter, read by the calling thread) and the asynchronous one (with
    # kazoo's async result) alike; the checks and messages are kazoo's.

    def _read_request(self, opcode: int, kind: int, path: str,
                      watch: Optional[WatchFunc], result: Any) -> Request:
        if not isinstance(path, str):
            raise TypeError("Invalid type for 'path' (string expected)")
        if watch and not callable(watch):
            raise TypeError("Invalid type for 'watch' (must be a callable)")
        return _rq.read(opcode, kind, self._full_path(path), watch or None,
                        result)

    def _children_request(self, path: str, watch: Optional[WatchFunc],
                          include_data: bool, result: Any) -> Request:
        if not isinstance(include_data, bool):
            raise TypeError("Invalid type for 'include_data' (bool expected)")
        if include_data:
            return self._read_request(codec.GET_CHILDREN2,
                                      _session.R_CHILDREN_STAT, path, watch,
                                      result)
        return self._read_request(codec.GET_CHILDREN, _session.R_CHILDREN,
                                  path, watch, result)

    def _set_request(self, path: str, value: Optional[bytes], version: int,
                     result: Any) -> Request:
        if not isinstance(path, str):
            raise TypeError("Invalid type for 'path' (string expected)")
        if value is not None and not isinstance(value, bytes):
            raise TypeError("Invalid type for 'value' (must be a byte string)")
        if not isinstance(version, int):
            raise TypeError("Invalid type for 'version' (int expected)")
        return _rq.set_data(self._full_path(path), value, version, result)

    def _delete_request(self, path: str, version: int,
                        result: Any) -> Request:
        if not isinstance(path, str):
            raise TypeError("Invalid type for 'path' (string expected)")
        if not isinstance(version, int):
            raise TypeError("Invalid type for 'version' (int expected)")
        return _rq.delete(self._full_path(path), version, result)

    def _submit(self, request: Request) -> IAsyncResult:
        self._connection.submit(request)
        return request.result

    def get_children_async(self, path: str, watch: Optional[WatchFunc] = None,
                           include_data: bool = False) -> IAsyncResult:
        """Asynchronously get a list of child nodes of a path. Takes the
        same arguments as :meth:`get_children`."""
        return self._submit(self._children_request(
            path, watch, include_data, self._new_result()))

    def get_async(self, path: str,
                  watch: Optional[WatchFunc] = None) -> IAsyncResult:
        """Asynchronously get the value of a node. Takes the same arguments
        as :meth:`get`."""
        return self._submit(self._read_request(
            codec.GET_DATA, _session.R_DATA_STAT, path, watch,
            self._new_result()))

    def exists_async(self, path: str,
                     watch: Optional[WatchFunc] = None) -> IAsyncResult:
        """Asynchronously check if a node exists. Takes the same arguments
        as :meth:`exists`."""
        return self._submit(self._read_request(
            codec.EXISTS, _session.R_STAT, path, watch,
            self._new_result()))

    def set_async(self, path: str, value: Optional[bytes],
                  version: int = -1) -> IAsyncResult:
        """Asynchronously set the value of a node. Takes the same arguments
        as :meth:`set`."""
        return self._submit(self._set_request(path, value, version,
                                              self._new_result()))

    def delete_async(self, path: str, version: int = -1) -> IAsyncResult:
        """Asynchronously delete a node. Takes the same arguments as
        :meth:`delete`, except for ``recursive``."""
        return self._submit(self._delete_request(path, version,
                                                 self._new_result()))

    def get_children(self, path: str, watch: Optional[WatchFunc] = None,
                     include_data: bool = False
                     ) -> Union[List[str], Tuple[List[str], ZnodeStat]]:
        """Get a list of child nodes of a path.

        Same contract as :meth:`kazoo.client.KazooClient.get_children`.
        """
        children: Union[List[str], Tuple[List[str], ZnodeStat]] = \
            self._connection.call(self._children_request(
                path, watch, include_data, Waiter()))
        return children

    def get(self, path: str, watch: Optional[WatchFunc] = None
            ) -> Tuple[Optional[bytes], ZnodeStat]:
        """Get the value of a node.

        Same contract as :meth:`kazoo.client.KazooClient.get`.
        """
        data_stat: Tuple[Optional[bytes], ZnodeStat] = self._connection.call(
            self._read_request(codec.GET_DATA, _session.R_DATA_STAT, path,
                               watch, Waiter()))
        return data_stat

    def exists(self, path: str, watch: Optional[WatchFunc] = None
               ) -> Optional[ZnodeStat]:
        """Check if a node exists.

        Same contract as :meth:`kazoo.client.KazooClient.exists`.
        """
        return self._connection.call(self._read_request(
            codec.EXISTS, _session.R_STAT, path, watch, Waiter()))

    def set(self, path: str, value: Optional[bytes],
            version: int = -1) -> ZnodeStat:
        """Set the value of a node.

        Same contract as :meth:`kazoo.client.KazooClient.set`.
        """
        return self._connection.call(self._set_request(path, value, version,
                                                       Waiter()))

    def delete(self, path: str, version: int = -1,
               recursive: bool = False) -> bool:
        """Delete a node.

        Same contract as :meth:`kazoo.client.KazooClient.delete`.
        """
        if not isinstance(recursive, bool):
            raise TypeError("Invalid type for 'recursive' (bool expected)")
        deleted: bool
        if recursive:
            deleted = self._delete_recursive(path)
            return deleted
        deleted = self._connection.call(self._delete_request(path, version,
                                                             Waiter()))
        return deleted

    def create(self, path: str, value: Optional[bytes] = b"",
               acl: Optional[Sequence[ACL]] = None, ephemeral: bool = False,
               sequence: bool = False, makepath: bool = False,
               include_data: bool = False) -> Union[str, Tuple[str, ZnodeStat]]:
        """Create a node with the given value as its data.

        Same contract as :meth:`kazoo.client.KazooClient.create`.
        """
        acl = acl or self.default_acl
        flags = _rq.create_flags(path, value, acl, ephemeral, sequence,
                                 makepath, include_data)
        if acl is None:
            acl = OPEN_ACL_UNSAFE
        full = _prefix_root(self.chroot, path, trailing=sequence)
        try:
            result = self._connection.call(
                _rq.create(full, value, acl, flags, include_data, Waiter()))
        except NoNodeError:
            if not makepath:
                raise
            parent = parent_to_make(path, sequence)
            self.ensure_path(parent, acl)
            result = self._connection.call(
                _rq.create(full, value, acl, flags, include_data, Waiter()))
        if include_data:
            return self.unchroot(result[0]), result[1]
        created: str = self.unchroot(result)
        return created
