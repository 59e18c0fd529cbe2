"""``fastzk watch PATH``: stream the changes of a subtree, one line per
event."""

import argparse
import queue
import signal
from typing import TYPE_CHECKING, Any, Optional, Tuple

from fastzk.cli.common import (
    EXIT_OK,
    Parser,
    SignalHandlers,
    Signalled,
    check_path,
    close_client,
    connect,
    connection_options,
    describe,
    raise_signalled,
    stdout_gone,
    timestamp,
    write_line,
)

if TYPE_CHECKING:
    from fastzk.client import KazooClient

DESCRIPTION = """\
Stream the changes of PATH and of every node under it, until interrupted
(Ctrl-C or SIGTERM exit with status 0).

Uses one persistent recursive watch (ZooKeeper 3.6+), so no change is
missed while connected.  One line per event, written and flushed at once:

  TIME CREATED|CHANGED PATH dataLength=N version=V
  TIME DELETED PATH
  TIME RESYNC PATH        after a reconnection: changes may have been missed
  TIME STATE CONNECTED|SUSPENDED|LOST
  TIME WATCHING PATH      once the watch is in place

dataLength and version are read just after the event, so after a burst of
changes they may describe a later version of the node (or show "gone").
Children changes are not reported separately: a child's CREATED and DELETED
events are.
"""


def add_parser(subparsers: "argparse._SubParsersAction[Parser]") -> None:
    """Add ``watch`` to ``subparsers``."""
    watch = subparsers.add_parser(
        "watch", help="stream the changes of a subtree",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    connection_options(watch, False)
    watch.add_argument("path", metavar="PATH", help="root of the subtree")
    watch.set_defaults(func=cmd_watch)


def cmd_watch(args: argparse.Namespace) -> int:
    """Print the events under ``args.path`` until interrupted."""
    from fastzk.protocol.watches import AddWatchMode

    check_path(args.path)
    # ("state", KazooState) or ("event", WatchedEvent).
    events: "queue.Queue[Tuple[str, Any]]" = queue.Queue()
    client: Optional[KazooClient] = None
    try:
        with SignalHandlers((signal.SIGTERM,), raise_signalled):
            client = connect(args)
            host = client._connection.connected_host if hasattr(
                client._connection, "connected_host") else None
            client.add_listener(lambda state: events.put(("state", state)))
            write_line("%s STATE CONNECTED%s" % (
                timestamp(), " %s:%s" % tuple(host[:2]) if host else ""))
            client.add_watch(args.path, lambda event: events.put(
                ("event", event)), AddWatchMode.PERSISTENT_RECURSIVE)
            write_line("%s WATCHING %s" % (timestamp(), args.path))
            while True:
                try:
                    kind, item = events.get(timeout=0.5)
                except queue.Empty:
                    continue
                if kind == "state":
                    write_line("%s STATE %s" % (timestamp(), item))
                    continue
                write_line(_event_line(client, item, args.connect_timeout))
    except (KeyboardInterrupt, Signalled):
        return EXIT_OK
    except BrokenPipeError:
        stdout_gone()
        return EXIT_OK
    finally:
        if client is not None:
            close_client(client)




def _event_line(client: "KazooClient", event: Any,
                timeout: Optional[float]) -> str:
    """The line for a watch ``event``; CREATED and CHANGED read the node's
    stat, waiting at most ``timeout`` seconds (None: no limit)."""
    from kazoo.exceptions import KazooException
    from kazoo.handlers.threading import KazooTimeoutError
    from kazoo.protocol.states import EventType

    if event.type == EventType.NONE:
        return ("%s RESYNC %s state=%s (changes may have been missed while "
                "disconnected)" % (timestamp(), event.path, event.state))
    if event.type not in (EventType.CREATED, EventType.CHANGED):
        return "%s %s %s" % (timestamp(), event.type, event.path)
    try:
        # Not client.exists(): a synchronous call from this thread can hold
        # back the next events (see the engine's read role); the async one
        # leaves the socket to the session thread.
        stat = client.exists_async(event.path).get(timeout=timeout)
    except (KazooException, KazooTimeoutError) as exc:
        extra = "(stat unavailable: %s)" % describe(exc)
    else:
        extra = ("dataLength=%d version=%d" % (stat.dataLength, stat.version)
                 if stat is not None else "(gone)")
    return "%s %s %s %s" % (timestamp(), event.type, event.path, extra)
