"""``fastzk locks PATH``: list a lock's contenders and flag those that look
abandoned."""

import argparse
import json
import re
import time
from typing import (
    TYPE_CHECKING,
    Dict,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    cast,
)

from fastzk.recipes import locknames
from fastzk.cli.common import (
    EXIT_OK,
    CliError,
    Parser,
    check_path,
    close_client,
    connect,
    connect_reason,
    connection_options,
    stdout_gone,
    write_line,
)
from fastzk.fourletter import four_letter_word

if TYPE_CHECKING:
    from fastzk.client import KazooClient

#: The longest ``fastzk locks --recheck``.
MAX_RECHECK = 3600.0

DESCRIPTION = """\
List the contenders of the lock PATH (kazoo's and fastzk's Lock, WriteLock
and ReadLock nodes: "<uuid>__lock__<seq>", "<uuid>__rlock__<seq>"), in the
order in which they hold the lock, i.e. by sequence number compared as an
integer, with their identifier (the node's data), the session that owns the
ephemeral node (ephemeralOwner, in hex) and their age (now - ctime).

A contender is the holder when no earlier contender excludes it (for an
exclusive node: no earlier node at all; for a shared one: no earlier
exclusive node).

Abandoned contenders (the heuristic).  A contender whose client is gone
blocks everyone after it until its session expires, and one whose client
still runs but forgot it (a bug, a leaked node) blocks forever.  When the
servers answer the four-letter words wchp and cons (4lw.commands.whitelist
must allow them), each server of --hosts is asked which sessions hold
watches on which nodes (wchp) and which sessions are connected (cons), and a
contender is flagged "ABANDONED?" when
  - it is not a holder and its session has no watch on any of the earlier
    contenders it waits for: nobody is waiting on it, since a live waiter
    always watches its predecessor (kazoo and fastzk both do); or
  - its session has no connection on any of the servers: the client died or
    is cut off; the node disappears when the session expires, unless the
    client reconnects first.
Suspects are checked again after --recheck seconds (a waiter re-arms its
watch whenever its predecessor goes) and flagged only if still suspect.
Without the four-letter words the check is skipped and the listing says
"(four-letter words disabled: cannot check)".  A server of --hosts that
cannot be asked (down, unreachable) is named in a "(not asked: ...)" line,
and the contenders whose session is on none of the servers that answered
show "unknown": they may be connected to it.  It is a heuristic: a session
connected to a server missing from --hosts looks dead, and wchp can be
costly on a server with very many watches.  Persistent (non-ephemeral)
contender nodes have no session and are not checked.  Over TLS the
servers are not asked (four-letter words are plain TCP, which a secure
client port does not speak) and the listing says so.
"""


def add_parser(subparsers: "argparse._SubParsersAction[Parser]") -> None:
    """Add ``locks`` to ``subparsers``."""
    locks = subparsers.add_parser(
        "locks", help="list a lock's contenders, flag abandoned ones",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    connection_options(locks, False)
    locks.add_argument("--recheck", type=_recheck_seconds, default=1.0,
                       metavar="SECONDS",
                       help="look again at suspects after SECONDS before "
                            "flagging them; 0: do not (default 1, at most "
                            "%g)" % MAX_RECHECK)
    locks.add_argument("path", metavar="PATH", help="the lock node")
    locks.set_defaults(func=cmd_locks)


def _recheck_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number of seconds: %r" % text)
    if not 0 <= value <= MAX_RECHECK:
        raise argparse.ArgumentTypeError(
            "must be between 0 and %g: %r" % (MAX_RECHECK, text))
    return value




class _Contender(object):
    """A contender as listed: its name, its node's data and stat, and what
    the check found."""

    __slots__ = ("name", "identifier", "owner", "ctime", "holder", "flags",
                 "unknown")

    def __init__(self, name: locknames.Contender, identifier: str,
                 owner: int, ctime: int) -> None:
        self.name = name
        self.identifier = identifier
        self.owner = owner
        self.ctime = ctime
        self.holder = False
        self.flags: List[str] = []
        # Its session is on no server that answered, and some did not.
        self.unknown = False

    @property
    def node(self) -> str:
        """The node's name (a child of the lock path)."""
        return self.name.node

    @property
    def seq(self) -> int:
        """The node's sequence number."""
        return self.name.sequence

    @property
    def shared(self) -> bool:
        """Whether it is a reader."""
        return self.name.shared


def _contenders(client: "KazooClient", path: str) -> List[_Contender]:
    """The contenders of lock ``path``, in lock order, holders marked."""
    from kazoo.exceptions import NoNodeError

    try:
        children = cast(List[str], client.get_children(path))
    except NoNodeError:
        raise CliError("%s: no such node" % path)
    found: List[_Contender] = []
    for name in locknames.in_lock_order(children):
        try:
            data, stat = client.get(path.rstrip("/") + "/" + name.node)
        except NoNodeError:
            continue  # released meanwhile
        identifier: str = (data or b"").decode("utf-8", "replace")
        found.append(_Contender(name, identifier, stat.ephemeralOwner,
                                stat.ctime))
    held = locknames.holding([c.name for c in found])
    for contender, holder in zip(found, held):
        contender.holder = holder
    return found


def _predecessors(contenders: Sequence[_Contender],
                  index: int) -> List[locknames.Contender]:
    """The names of the contenders ``contenders[index]`` waits for."""
    return locknames.waits_for([c.name for c in contenders], index)


class _ServerView(object):
    """Watches and live sessions as the servers report them.

    ``missing`` names the servers that could not be asked, with why;
    ``unavailable`` says why nothing could be checked (no server answered).
    """

    def __init__(self) -> None:
        # Server path -> the ids of the sessions watching it.
        self.watchers: Dict[str, Set[int]] = {}
        self.live: Set[int] = set()
        self.missing: List[str] = []
        self.unavailable: Optional[str] = None


def _server_view(hosts: Sequence[Tuple[str, int]]) -> _ServerView:
    view = _ServerView()
    disabled = 0
    for host, port in hosts:
        texts, reason = _ask_server(host, port)
        if texts is not None:
            _parse_wchp(texts["wchp"], view.watchers)
            view.live.update(
                int(sid, 16)
                for sid in re.findall(r"sid=0x([0-9a-fA-F]+)", texts["cons"]))
            continue
        disabled += reason == _DISABLED
        view.missing.append("%s:%s: %s" % (host, port, reason))
    if len(view.missing) == len(hosts):
        if disabled == len(hosts):
            view.unavailable = "four-letter words disabled: cannot check"
        else:
            view.unavailable = ("four-letter words unavailable: %s: cannot "
                                "check" % "; ".join(view.missing))
    return view


_DISABLED = "four-letter words disabled"


def _tls_view() -> _ServerView:
    """The view over TLS: four-letter words are plain TCP, which a
    server's secure client port does not answer, so nothing is asked."""
    view = _ServerView()
    view.unavailable = ("four-letter words not asked: they are plain TCP "
                        "and --hosts is reached over TLS: cannot check")
    return view


def _ask_server(host: str, port: int
                ) -> Tuple[Optional[Dict[str, str]], Optional[str]]:
    """``({word: answer}, None)`` for wchp and cons, or ``(None, why
    not)``."""
    texts: Dict[str, str] = {}
    for word in ("wchp", "cons"):
        try:
            text = four_letter_word(host, port, word)
        except OSError as exc:
            return None, connect_reason(exc)
        if "not in the whitelist" in text or "not executed" in text:
            return None, _DISABLED
        if not text.strip() and word == "cons":
            return None, "empty answer to cons"
        texts[word] = text
    return texts, None


def _parse_wchp(text: str, watchers: Dict[str, Set[int]]) -> None:
    path = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0] in " \t":
            if path is not None:
                try:
                    watchers.setdefault(path, set()).add(
                        int(line.strip(), 16))
                except ValueError:
                    pass
        else:
            path = line.strip()


def _suspects(contenders: Sequence[_Contender], view: _ServerView,
              full_path: str) -> List[_Contender]:
    """Set ``flags`` on each contender from ``view``; returns the flagged."""
    flagged: List[_Contender] = []
    base = full_path.rstrip("/") + "/"
    for index, contender in enumerate(contenders):
        contender.flags = []
        contender.unknown = False
        owner = contender.owner
        if not owner:
            continue  # persistent node: no session to check
        if owner not in view.live and view.missing:
            # Possibly connected to a server that could not be asked, which
            # holds its watches too: nothing can be said.
            contender.unknown = True
            continue
        if owner not in view.live:
            contender.flags.append(
                "session 0x%x has no connection on the servers" % owner)
        if not contender.holder:
            waits_for = _predecessors(contenders, index)
            if not any(owner in view.watchers.get(base + c.node, ())
                       for c in waits_for):
                contender.flags.append(
                    "nobody waits: session 0x%x watches none of the %d "
                    "contender(s) before it" % (owner, len(waits_for)))
        if contender.flags:
            flagged.append(contender)
    return flagged


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return "%.1fs" % seconds
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return "%dm%02ds" % (minutes, sec)
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return "%dh%02dm" % (hours, minutes)
    days, hours = divmod(hours, 24)
    return "%dd%02dh" % (days, hours)


def cmd_locks(args: argparse.Namespace) -> int:
    """List the contenders of the lock ``args.path``."""
    from kazoo.protocol.paths import _prefix_root

    check_path(args.path)
    client = connect(args)
    try:
        full_path: str = _prefix_root(client.chroot, args.path)
        hosts: List[Tuple[str, int]] = list(client.hosts)
        contenders = _contenders(client, args.path)
        view = None
        if contenders:
            view = _tls_view() if args.tls else _server_view(hosts)
        if view is not None and view.unavailable is None:
            flagged = _suspects(contenders, view, full_path)
            if flagged and args.recheck > 0:
                time.sleep(args.recheck)
                again = _contenders(client, args.path)
                view2 = _server_view(hosts)
                if view2.unavailable is None:
                    still = {c.node: c for c in _suspects(again, view2,
                                                         full_path)}
                    for contender in contenders:
                        if contender.node not in still:
                            contender.flags = []
                        else:
                            contender.flags = still[contender.node].flags
                    view.missing = sorted(set(view.missing + view2.missing))
                else:
                    view = view2
        try:
            _print_contenders(args.path, contenders, view)
        except BrokenPipeError:
            stdout_gone()
        return EXIT_OK
    finally:
        close_client(client)


def _print_contenders(path: str, contenders: Sequence[_Contender],
                      view: Optional[_ServerView]) -> None:
    now = time.time()
    if not contenders:
        write_line("%s: no contenders" % path)
        return
    write_line("%s: %d contender%s, in lock order"
               % (path, len(contenders), "" if len(contenders) == 1 else "s"))
    checked = view is not None and view.unavailable is None
    rows = [("SEQ", "TYPE", "STATE", "CHECK", "SESSION", "AGE",
             "IDENTIFIER", "NODE")]
    for c in contenders:
        if not checked or not c.owner:
            check = "-"
        elif c.unknown:
            check = "unknown"
        else:
            check = "ABANDONED?" if c.flags else "ok"
        rows.append((
            str(c.seq),
            "shared" if c.shared else "exclusive",
            "holder" if c.holder else "waiting",
            check,
            "0x%x" % c.owner if c.owner else "(persistent)",
            _age(now - c.ctime / 1000.0),
            json.dumps(c.identifier, ensure_ascii=False),
            c.node,
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [row[0].rjust(widths[0])]
        cells += [cell.ljust(width) for cell, width in zip(row[1:-1],
                                                            widths[1:-1])]
        cells.append(row[-1])
        write_line("  ".join(cells))
    if not checked:
        write_line("(%s)" % (view.unavailable if view is not None else
                             "not checked"))
        return
    assert view is not None  # checked
    if view.missing:
        write_line("(not asked: %s; a contender whose session is on none of "
                   "the servers that answered is \"unknown\")"
                   % "; ".join(view.missing))
    flagged = [c for c in contenders if c.flags]
    for c in flagged:
        write_line("ABANDONED? %d %s: %s" % (
            c.seq, json.dumps(c.identifier, ensure_ascii=False),
            "; ".join(c.flags)))
    if flagged:
        write_line("%d of %d contenders look abandoned (see fastzk locks "
                   "--help)" % (len(flagged), len(contenders)))
    else:
        write_line("no contender looks abandoned")
