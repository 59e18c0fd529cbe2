"""Higher level data and children watches that do not miss changes.

:class:`DataWatch` and :class:`ChildrenWatch` have kazoo's signatures and
callback contracts (:mod:`kazoo.recipe.watchers`) and are subclasses of
kazoo's classes, so code written for kazoo keeps working.  What differs is
what kazoo gets wrong:

- A watch fires once, and changes made between the event and the read that
  sets the next watch are collapsed into what that read returns.  Both
  recipes therefore re-read after every event and report what the read
  shows, with the watch set by that same read, so the last call always
  reflects the node's final state.
- :class:`DataWatch` tells a node's incarnations apart (by ``czxid``): a
  delete it saw is reported (``func(None, None)``) even when the read after
  the event already finds the node created again, and so is a delete and
  re-create that happened while the client was disconnected.  kazoo reports
  neither.
- :class:`ChildrenWatch` keeps working when its node is deleted: it reports
  an empty list and watches for the node to come back (kazoo #153 stops it
  for good).
- Neither leaves a server-side watch behind once its function returned
  ``False``: the watches it held are removed from the server, unless
  another function of the same client shares them.
- On fastzk's client, one-shot watches survive a reconnect (they are
  restored with SetWatches and the server sends catch-up events); both
  recipes still re-read after every reconnect, and after a session expiry
  they set their watches again on the new session.  So a change made
  while disconnected is read twice (after the reconnection and after its
  catch-up event): the recipes call the function only for a state it has
  not seen, told apart by the node's stat (``mzxid`` and ``czxid`` for
  data, ``cversion`` and ``czxid`` for children), never by the event.

Functions are called on the client's callback thread (or the thread that
registers them, for the first call), one at a time per watch.
"""

import inspect
import logging
import warnings
from typing import Any, Callable, List, Optional, Tuple, TypeVar

from kazoo.client import KazooClient
from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    NoNodeError,
    SessionExpiredError,
)
from kazoo.protocol.states import (
    EventType, KazooState, WatchedEvent, ZnodeStat,
)
from kazoo.recipe import watchers as _kazoo

from fastzk.kazooface.fastpath import fast_path_of
from fastzk.protocol.watches import WatcherType
# Named here too for the recipes that share them (fastzk.cache).
from fastzk.recipes.watchrelease import release_watches as release_watches
from fastzk.recipes.watchrelease import wait_released as wait_released

__all__ = ["DataWatch", "ChildrenWatch"]

log = logging.getLogger(__name__)

#: A recipe's function: called with the node's state (and, when it takes
#: it, the event); returning False stops the watch.
_Func = TypeVar("_Func", bound=Callable[..., Any])
# One call of a DataWatch's function: (data, stat, event).
_DataCall = Tuple[Optional[bytes], Optional[ZnodeStat], Optional[WatchedEvent]]
# What tells one state of a node's children from another: (czxid, cversion).
_ChildrenVersion = Tuple[int, int]

# A read interrupted by these is repeated after the reconnection.
_RETRY_LATER = (ConnectionLoss, SessionExpiredError)


def _takes_event(func: Callable[..., Any], count: int) -> Optional[bool]:
    """Whether ``func`` can be called with ``count`` positional arguments
    (None when its signature cannot be read)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    positional = 0
    for param in signature.parameters.values():
        if param.kind == param.VAR_POSITIONAL:
            return True
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= count


def _children_version(
        stat: Optional[ZnodeStat]) -> Optional[_ChildrenVersion]:
    """What tells one state of a node's children from another: the node's
    incarnation (``czxid``) and its count of child changes (``cversion``,
    which every create and delete of a child increments, even when they
    leave the same names).  None for a node that does not exist."""
    if stat is None:
        return None
    return stat.czxid, stat.cversion


class DataWatch(_kazoo.DataWatch):
    """Watches a node for data updates and calls the specified function
    each time it changes.

    kazoo's :class:`~kazoo.recipe.watchers.DataWatch` contract: the function
    is called the very first time it is registered, then each time the node
    changes; with ``None`` for both values while the node does not exist.
    Returning ``False`` from it stops the watch.  If the function takes three
    arguments the third is the :class:`~kazoo.protocol.states.WatchedEvent`
    the server sent (None for the first call and for reads made after a
    reconnection).

    Unlike kazoo's, every deletion is reported: when the node is deleted
    and created again before the read that follows the event (or while the
    client is disconnected), the function is called with ``(None, None)``
    and then with the new node's data, in that order.  After the function
    returned ``False`` the watches this DataWatch set are removed from the
    server.

    Example with client:

    .. code-block:: python

        @client.DataWatch('/path/to/watch')
        def my_func(data, stat):
            print("Data is %s" % data)
            print("Version is %s" % stat.version)

        # Or if you want the event object
        @client.DataWatch('/path/to/watch')
        def my_func(data, stat, event):
            print("Data is %s" % data)
            print("Event is %s" % event)
    """

    def __init__(self, client: KazooClient, path: str,
                 func: Optional[Callable[..., Any]] = None,
                 *args: Any, **kwargs: Any) -> None:
        """Create a data watcher for a path.

        :param client: A zookeeper client.
        :type client: :class:`~fastzk.KazooClient`
        :param path: The path to watch for data changes on.
        :type path: str
        :param func: Function to call initially and every time the node
                     changes. `func` will be called with a tuple, the value
                     of the node and a :class:`~kazoo.client.ZnodeStat`
                     instance (or None, None when the node does not exist).
        :type func: callable
        """
        self._client = client
        self._fast = fast_path_of(client)
        self._path = path
        self._func: Optional[Callable[..., Any]] = func
        self._stopped = False
        self._run_lock = client.handler.lock_object()
        self._version: Optional[int] = None
        self._stat: Optional[ZnodeStat] = None
        self._include_event: Optional[bool] = None
        self._ever_called = False
        self._used = False
        if args or kwargs:
            warnings.warn(
                "Passing additional arguments to DataWatch is"
                " deprecated. ignore_missing_node is now assumed "
                " to be True by default, and the event will be "
                " sent if the function can handle receiving it",
                DeprecationWarning,
                stacklevel=2,
            )
        if func is not None:
            self._used = True
            self._client.add_listener(self._session_watcher)
            self._get_data()

    def __call__(self, func: _Func) -> _Func:
        """Callable version for use as a decorator.

        :param func: Function to call initially and every time the data
                     changes (see the class documentation).
        :type func: callable
        """
        if self._used:
            raise KazooException(
                "A function has already been associated with this "
                "DataWatch instance.")
        self._func = func
        self._used = True
        self._client.add_listener(self._session_watcher)
        self._get_data()
        return func

    def _read(self) -> Tuple[Optional[bytes], Optional[ZnodeStat]]:
        """Read the node and leave a watch on it: (data, stat), or
        (None, None) with an exists watch when the node does not exist."""
        client = self._client
        while True:
            try:
                read: Tuple[bytes, ZnodeStat] = client.get(self._path,
                                                           self._watcher)
                return read
            except NoNodeError:
                stat = client.exists(self._path, self._watcher)
                if stat is None:
                    return None, None
                # Created in between; its data is read on the next turn.

    def _get_data(self, event: Optional[WatchedEvent] = None) -> None:
        with self._run_lock:
            if self._stopped or self._func is None:
                return
            try:
                data, stat = self._read()
            except ConnectionClosedError:
                return
            except _RETRY_LATER:
                # The session listener reads again once reconnected.
                return
            for call in self._calls(data, stat, event):
                if self._call(*call) is False:
                    self._stop()
                    return

    def _calls(self, data: Optional[bytes], stat: Optional[ZnodeStat],
               event: Optional[WatchedEvent]) -> List[_DataCall]:
        """What to tell the function after a read: a list of
        (data, stat, event) calls."""
        last = self._stat
        first = not self._ever_called
        self._stat = stat
        self._version = None if stat is None else stat.mzxid
        if stat is None:
            if last is not None or first:
                return [(None, None, event)]
            return []
        if last is not None and last.czxid != stat.czxid:
            # Another incarnation of the node: it was deleted since the last
            # call.  Report the deletion first.  The server's event goes
            # with the call it announced.
            if event is not None and event.type == EventType.DELETED:
                return [(None, None, event), (data, stat, None)]
            return [(None, None, None), (data, stat, event)]
        if first or last is None or stat.mzxid > last.mzxid:
            return [(data, stat, event)]
        return []

    def _call(self, data: Optional[bytes], stat: Optional[ZnodeStat],
              event: Optional[WatchedEvent]) -> object:
        func = self._func
        if func is None:
            return None
        self._ever_called = True
        if self._include_event is None:
            self._include_event = _takes_event(func, 3)
        try:
            if self._include_event is None:
                try:
                    return func(data, stat, event)
                except TypeError:
                    return func(data, stat)
            if self._include_event:
                return func(data, stat, event)
            return func(data, stat)
        except Exception:
            log.exception("Error in DataWatch function for %s", self._path)
            return None

    def _stop(self) -> None:
        self._stopped = True
        self._func = None
        self._client.remove_listener(self._session_watcher)
        release_watches(self._client, self._fast, self._path,
                        self._watcher, WatcherType.DATA)

    def _watcher(self, event: WatchedEvent) -> None:
        if event.type == EventType.NONE:
            return  # connection state: the session listener re-reads
        self._get_data(event=event)

    def _session_watcher(self, state: str) -> None:
        if state == KazooState.CONNECTED and not self._stopped:
            self._client.handler.spawn(self._get_data)


class ChildrenWatch(_kazoo.ChildrenWatch):
    """Watches a node for children updates and calls the specified
    function each time it changes.

    kazoo's :class:`~kazoo.recipe.watchers.ChildrenWatch` contract: the
    function is called the very first time it is registered with the list
    of children, then once for each change of the children (a child
    created or deleted, by the node's ``cversion``).  Children changed
    while the client was disconnected are reported once after the
    reconnection; a reconnection without a change calls nothing.
    Returning ``False`` stops the watch.  With ``send_event=True`` the
    function also receives the :class:`~kazoo.protocol.states.WatchedEvent`
    (None for the first call and for reads after a reconnection).

    Unlike kazoo's (#153), the watch survives the deletion of its node:
    the function is called with an empty list, and with the children again
    once the node is re-created.  A node that does not exist yet is watched
    the same way (the first call gets an empty list).  With
    ``allow_session_lost=False`` the watch stops when the session is lost.
    After it stopped, the watches it set are removed from the server.

    Example with client:

    .. code-block:: python

        @client.ChildrenWatch('/path/to/watch')
        def my_func(children):
            print("Children are %s" % children)
    """

    def __init__(self, client: KazooClient, path: str,
                 func: Optional[Callable[..., Any]] = None,
                 allow_session_lost: bool = True,
                 send_event: bool = False) -> None:
        """Create a children watcher for a path.

        :param client: A zookeeper client.
        :type client: :class:`~fastzk.KazooClient`
        :param path: The path to watch for children on.
        :type path: str
        :param func: Function to call initially and every time the
                     children change. `func` will be called with a single
                     argument, the list of children.
        :type func: callable
        :param allow_session_lost: Whether the watch should be
                                   re-registered if the zookeeper session
                                   is lost.
        :type allow_session_lost: bool
        :param send_event: Whether the function should be passed the event
                           sent by ZooKeeper or None upon initialization
                           (see class documentation).
        :type send_event: bool
        """
        self._client = client
        self._fast = fast_path_of(client)
        self._path = path
        self._func: Optional[Callable[..., Any]] = func
        self._send_event = send_event
        self._stopped = False
        self._watch_established = False
        self._allow_session_lost = allow_session_lost
        self._run_lock = client.handler.lock_object()
        self._prior_children: Optional[List[str]] = None
        # _children_version() of the children last given to the function.
        self._prior_version: Optional[_ChildrenVersion] = None
        self._used = False
        if func is not None:
            self._used = True
            self._client.add_listener(self._session_watcher)
            self._get_children()

    def __call__(self, func: _Func) -> _Func:
        """Callable version for use as a decorator.

        :param func: Function to call initially and every time the
                     children change. `func` will be called with a single
                     argument, the list of children.
        :type func: callable
        """
        if self._used:
            raise KazooException(
                "A function has already been associated with this "
                "ChildrenWatch instance.")
        self._func = func
        self._used = True
        self._client.add_listener(self._session_watcher)
        self._get_children()
        return func

    def _read(self) -> Tuple[List[str], Optional[_ChildrenVersion]]:
        """The children and their version, with a child watch set; an
        empty list and None with an exists watch set when the node does
        not exist."""
        client = self._client
        while True:
            try:
                children: List[str]
                stat: ZnodeStat
                children, stat = client.get_children(
                    self._path, self._watcher, include_data=True)
                return children, _children_version(stat)
            except NoNodeError:
                if client.exists(self._path, self._watcher) is None:
                    return [], None
                # Re-created in between: read its children.

    def _get_children(self,
                      event: Optional[WatchedEvent] = None) -> None:
        with self._run_lock:
            if self._stopped or self._func is None:
                return
            try:
                children, version = self._read()
            except ConnectionClosedError:
                return
            except _RETRY_LATER:
                self._watch_established = False
                return
            self._watch_established = True
            if (self._prior_children is not None
                    and version == self._prior_version):
                # The children the function was last called with: a
                # change of the node's data, or a second read of the same
                # state after a reconnection (the session listener's and
                # the restored watch's catch-up event both read).
                return
            self._prior_children = children
            self._prior_version = version
            try:
                if self._send_event:
                    result = self._func(children, event)
                else:
                    result = self._func(children)
            except Exception:
                log.exception("Error in ChildrenWatch function for %s",
                              self._path)
                return
            if result is False:
                self._stop()

    def _stop(self) -> None:
        self._stopped = True
        self._func = None
        self._client.remove_listener(self._session_watcher)
        for watcher_type in (WatcherType.CHILDREN, WatcherType.DATA):
            release_watches(self._client, self._fast, self._path,
                            self._watcher, watcher_type)

    def _watcher(self, event: WatchedEvent) -> None:
        if event.type != EventType.NONE:
            self._get_children(event)

    def _session_watcher(self, state: str) -> Optional[bool]:
        if state in (KazooState.LOST, KazooState.SUSPENDED):
            self._watch_established = False
            if state == KazooState.LOST and not self._allow_session_lost:
                self._stopped = True
                self._func = None
                return True  # removes this listener
        elif state == KazooState.CONNECTED and not self._stopped:
            self._client.handler.spawn(self._get_children)
        return None
