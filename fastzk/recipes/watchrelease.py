"""Removing the server-side watches a recipe's function held.

ZooKeeper keeps one watch per kind, path and session, and removeWatches
drops them all, so a recipe that stops (:mod:`fastzk.watchers`,
:mod:`fastzk.cache`) removes them only when no other function of the
client shares them.
"""

import logging
from typing import Dict, Iterable, Optional, Set, Tuple

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError, NoWatcherError
from kazoo.interfaces import IAsyncResult
from kazoo.protocol.paths import _prefix_root

from fastzk.protocol import watches as _watches
from fastzk.kazooface.fastpath import FastPath
from fastzk.protocol.watches import WatcherType, WatchFunc

__all__ = ["must_remove", "release_watches", "wait_released", "watched_paths"]

log = logging.getLogger("fastzk.watchrelease")

_ALL_KINDS: Tuple[int, ...] = (_watches.DATA, _watches.EXIST, _watches.CHILD,
              _watches.PERSISTENT, _watches.RECURSIVE)
# Registry kinds of the watches a function holds, by WatcherType.
_HOLDS: Dict[WatcherType, Tuple[int, ...]] = {
    WatcherType.DATA: (_watches.DATA, _watches.EXIST),
    WatcherType.CHILDREN: (_watches.CHILD,),
    WatcherType.ANY: _ALL_KINDS,
}
# Registry kinds whose server-side watches a removeWatches of each
# WatcherType drops.  ZooKeeper 3.8 keeps persistent watches in its data
# (and, non-recursive ones, also child) watch tables, so removing DATA
# drops persistent and recursive watches too, and CHILDREN the child half
# of a persistent one.
_DROPS: Dict[WatcherType, Tuple[int, ...]] = {
    WatcherType.DATA: (_watches.DATA, _watches.EXIST, _watches.PERSISTENT,
                       _watches.RECURSIVE),
    WatcherType.CHILDREN: (_watches.CHILD, _watches.PERSISTENT),
    WatcherType.ANY: _ALL_KINDS,
}


def must_remove(registry: "_watches.WatchRegistry", full: str,
                func: WatchFunc, watcher_type: WatcherType) -> bool:
    """Whether a removeWatches of ``watcher_type`` on ``full`` (a path
    with the chroot) must go to the server now that ``func`` stops.

    ZooKeeper keeps one watch per kind, path and session, whatever the
    number of client-side functions behind it, and removeWatches drops them
    all (persistent ones included: see ``_DROPS``).  So the watches are
    removed only when ``func`` holds one and no other function of this
    client uses a watch the request would drop; otherwise they stay for
    the others (and ``func`` is ignored when they fire).  A persistent
    watch of ``func``'s that stays is forgotten in ``registry``, so the
    next reconnect stops restoring it.
    """
    held = shared = False
    holds = _HOLDS[watcher_type]
    for kind in _DROPS[watcher_type]:
        funcs = registry.by_path(kind).get(full)
        if not funcs:
            continue
        for other in list(funcs):
            if other != func:
                shared = True
            elif kind in holds:
                held = True
    if not held:
        return False
    if shared:
        if watcher_type == WatcherType.ANY:
            # Persistent watches are never fired away: forget ours locally
            # (the others' one-shot watches on the path keep the
            # server-side entry meanwhile).
            for kind in (_watches.PERSISTENT, _watches.RECURSIVE):
                funcs = registry.by_path(kind).get(full)
                if funcs and func in funcs:
                    registry.discard(kind, full, func)
        return False
    return True


def watched_paths(registry: "_watches.WatchRegistry",
                  func: WatchFunc) -> Set[str]:
    """The paths (with the chroot) where ``func`` holds a watch of any kind
    in ``registry``."""
    found: Set[str] = set()
    for kind in _ALL_KINDS:
        for full, funcs in list(registry.by_path(kind).items()):
            if func in funcs:
                found.add(full)
    return found


def release_watches(client: KazooClient, fast: Optional[FastPath],
                    path: str, func: WatchFunc,
                    watcher_type: WatcherType) -> Optional[IAsyncResult]:
    """Remove from the server the watches ``func`` holds on ``path``, when
    no other function of the client shares them (see :func:`must_remove`).
    ``fast`` is ``client``'s :func:`~fastzk.kazooface.fastpath.fast_path_of`; a
    client without it (kazoo's) is left alone.

    :returns: the asynchronous result of the removeWatches request, or
              None when none was sent.
    """
    if fast is None:
        return None
    full = _prefix_root(client.chroot, path)
    if not must_remove(fast.watches, full, func, watcher_type):
        return None
    try:
        return fast.remove_watches(path, watcher_type)
    except Exception:  # the client is closing
        log.debug("could not remove the watches of %s", path, exc_info=True)
        return None


def wait_released(results: Iterable[Optional[IAsyncResult]],
                  timeout: float = 5.0) -> None:
    """Wait for removeWatches results from :func:`release_watches`,
    ignoring the errors a watch that already fired produces."""
    for result in results:
        if result is None:
            continue
        try:
            result.get(timeout=timeout)
        except (NoWatcherError, NoNodeError, KazooException):
            pass
        except Exception:  # timeout of the handler
            log.debug("removeWatches did not complete", exc_info=True)
