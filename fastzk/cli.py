"""The ``fastzk`` command line (``fastzk ...`` or ``python -m fastzk ...``).

Commands:

``fastzk bench``
    run the benchmarks (:mod:`fastzk.bench`).
``fastzk lock PATH -- COMMAND...``
    run a command while holding a lock, like ``flock(1)`` for a cluster.
``fastzk watch PATH``
    stream the changes of a subtree, one line per event.
``fastzk locks PATH``
    list a lock's contenders and flag those that look abandoned.

Errors are reported as one line on stderr with a non-zero exit status,
never as a traceback (``--verbose`` shows the client's log and, for an
unexpected error, the traceback).  Only the standard library and kazoo are
used.
"""

import argparse
import datetime
import json
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings

from fastzk.testing.zkserver import four_letter_word

__all__ = ["main", "EXIT_LOCK_TIMEOUT"]

PROG = "fastzk"
DEFAULT_HOSTS = "127.0.0.1:2181"
DEFAULT_CONNECT_TIMEOUT = 15.0
#: Connecting gives up before its timeout once every server has refused
#: (or not resolved) in this many rounds in a row: about 0.3 s with
#: kazoo's retry delays (0.1 s, then doubling), so a refusal that lasts
#: only a moment (a listener being rebound, an accept queue overflowing
#: with tcp_abort_on_overflow) does not fail a command.
REFUSED_ROUNDS = 3
_CONNECT_POLL = 0.02
#: The longest ``fastzk locks --recheck``.
MAX_RECHECK = 3600.0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_NO_ANSWER_YET = object()  # an attempt under way at the deadline
_UNSET = object()  # an option not given (None: given as "no limit")

EXIT_OK = 0
#: Any error: connection refused or timed out, ZooKeeper error, bad node.
EXIT_ERROR = 1
#: Bad usage, or a command that is not available in this installation.
EXIT_USAGE = 2
#: ``fastzk lock --timeout``: the lock was not acquired in time
#: (``EX_TEMPFAIL`` of sysexits.h: try again later).
EXIT_LOCK_TIMEOUT = 75
#: ``fastzk lock``: the command could not be executed / was not found
#: (the shell's conventions).
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127

#: Signals ``fastzk lock`` forwards to the command it runs.
FORWARDED_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2")
    if hasattr(signal, name)
)

_CONTENDER_RE = re.compile(r"(__lock__|__rlock__)(-?\d{10})$")


class CliError(Exception):
    """An error reported as one line on stderr, with an exit status."""

    def __init__(self, message, code=EXIT_ERROR):
        super().__init__(message)
        self.code = code


class _Signalled(BaseException):
    """Raised in the main thread by a signal handler of ours."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


# ---------------------------------------------------------------------------
# Argument parsing
# ---------------------------------------------------------------------------

_MAIN_DESCRIPTION = """\
fastzk command line: benchmarks, locks and watches on a ZooKeeper ensemble.

The ensemble is given by --hosts (default: the environment variable
ZOOKEEPER_HOSTS, else 127.0.0.1:2181), a kazoo connection string such as
"zk1:2181,zk2:2181,zk3:2181/chroot".
"""

_MAIN_EPILOG = """\
exit status: 0 on success; 1 on errors (cannot connect, ZooKeeper errors);
2 on bad usage; `lock` has its own (see `fastzk lock --help`).
Errors are one line on stderr; --verbose shows the client's log.
"""

_LOCK_DESCRIPTION = """\
Run COMMAND while holding the lock PATH, then release it.

The lock is fastzk's, compatible with kazoo's recipes on the same path: by
default exclusive (a WriteLock: it waits for every earlier contender, kazoo
Lock, WriteLock or ReadLock); with --shared a ReadLock, held together with
other readers and excluded only by exclusive holders.  The contender node
(ephemeral, "<uuid>__lock__<seq>" or "<uuid>__rlock__<seq>") holds the
identifier, shown by `fastzk locks`.

COMMAND runs with fastzk's stdin, stdout and stderr.  SIGINT, SIGTERM,
SIGHUP, SIGUSR1 and SIGUSR2 received by fastzk are forwarded to it (SIGINT
is not forwarded when fastzk runs in the foreground of a terminal, where
Ctrl-C reaches COMMAND directly); the lock is released only once COMMAND
has exited.  A signal received while still waiting for the lock abandons
the wait (the contender node is removed).  A signal ignored when fastzk
starts (SIGINT for a background job of a script) stays ignored, by fastzk
and by COMMAND.  If the lock is lost while COMMAND
runs (the session expired) a warning is printed; COMMAND is not stopped.

If fastzk itself dies while COMMAND runs (killed with SIGKILL, say), the
lock is gone once its session expires and another process may take it, so
on Linux COMMAND is killed with SIGKILL at once (PR_SET_PDEATHSIG);
processes COMMAND started keep running.  On other systems COMMAND keeps
running, without the lock once the session expires.
"""

_LOCK_EPILOG = """\
exit status: COMMAND's exit status (128+N when it was killed by signal N);
75 (EX_TEMPFAIL) when the lock was not acquired within --timeout;
126 when COMMAND cannot be executed, 127 when it is not found;
128+N when signal N arrived before the lock was acquired;
1 on other errors (cannot connect...), 2 on bad usage.

examples:
  fastzk lock /locks/backup -- pg_dump -f /backups/db.sql mydb
  fastzk lock --timeout 0 /locks/cron-job -- ./job.sh   # skip if running
  fastzk lock --shared /locks/schema -- ./read-only-report.sh
"""

_WATCH_DESCRIPTION = """\
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

_LOCKS_DESCRIPTION = """\
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
contender nodes have no session and are not checked.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line, like every other error: "fastzk: lock: ...".
        prog = self.prog.split()
        where = " ".join(prog[1:])
        raise CliError("%s%s (see %s --help)" % (
            where + ": " if where else "", message, self.prog), EXIT_USAGE)


def _connection_options(parser, top_level):
    default = None if top_level else argparse.SUPPRESS
    parser.add_argument(
        "--hosts", default=default, metavar="HOSTS",
        help="ZooKeeper connection string (default: $ZOOKEEPER_HOSTS or %s)"
        % DEFAULT_HOSTS)
    names = ("--timeout", "--connect-timeout") if top_level else (
        "--connect-timeout",)
    parser.add_argument(
        *names, dest="connect_timeout", type=_seconds,
        default=_UNSET if top_level else argparse.SUPPRESS,
        metavar="SECONDS",
        help="how long to try to connect (default %g; inf: no limit); a "
             "host list whose every server refuses the connection or does "
             "not resolve fails at once" % DEFAULT_CONNECT_TIMEOUT)
    parser.add_argument(
        "-v", "--verbose", action="count", default=0 if top_level
        else argparse.SUPPRESS,
        help="log the client's activity on stderr (-vv: debug)")


def _seconds(text):
    """A duration >= 0 in seconds; "inf" (or anything beyond what a wait
    can take) means no limit, returned as None."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number of seconds: %r" % text)
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError("must be >= 0 (or inf): %r" % text)
    if value > threading.TIMEOUT_MAX:
        return None
    return value


def _recheck_seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number of seconds: %r" % text)
    if not 0 <= value <= MAX_RECHECK:
        raise argparse.ArgumentTypeError(
            "must be between 0 and %g: %r" % (MAX_RECHECK, text))
    return value


def build_parser(lock_command=True):
    """The argument parser.  With ``lock_command`` False, ``lock`` takes no
    COMMAND (it is what follows ``--``, split off by :func:`main`)."""
    from fastzk import __version__

    parser = _Parser(prog=PROG, description=_MAIN_DESCRIPTION,
                     epilog=_MAIN_EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version",
                        version="%(prog)s " + __version__)
    _connection_options(parser, True)
    sub = parser.add_subparsers(dest="command_name", metavar="COMMAND",
                                parser_class=_Parser)
    sub.required = True

    bench = sub.add_parser(
        "bench", add_help=False,
        help="run the benchmarks (fastzk bench --help for their options)",
        description="Run fastzk's benchmarks; every argument goes to them.")
    bench.set_defaults(func=cmd_bench)

    raw = argparse.RawDescriptionHelpFormatter
    lock = sub.add_parser(
        "lock", help="run a command while holding a lock",
        usage="%(prog)s [options] PATH -- COMMAND [ARG...]",
        description=_LOCK_DESCRIPTION, epilog=_LOCK_EPILOG,
        formatter_class=raw)
    lock.add_argument(
        "--timeout", dest="lock_timeout", type=_seconds, default=None,
        metavar="SECONDS",
        help="give up (exit status %d) when the lock is not acquired within "
             "SECONDS; 0 tries once without waiting (default: wait "
             "forever, as with inf)"
        % EXIT_LOCK_TIMEOUT)
    lock.add_argument("--shared", action="store_true",
                      help="take a shared lock (ReadLock) instead of an "
                           "exclusive one")
    lock.add_argument("--identifier", metavar="TEXT",
                      help="stored in the contender node (default: "
                           "HOSTNAME:PID of this fastzk process)")
    _connection_options(lock, False)
    lock.add_argument("path", metavar="PATH", help="the lock node")
    if lock_command:
        lock.add_argument("command", metavar="COMMAND",
                          nargs=argparse.REMAINDER,
                          help="the command and its arguments, after --")
    lock.set_defaults(func=cmd_lock)

    watch = sub.add_parser(
        "watch", help="stream the changes of a subtree",
        description=_WATCH_DESCRIPTION, formatter_class=raw)
    _connection_options(watch, False)
    watch.add_argument("path", metavar="PATH", help="root of the subtree")
    watch.set_defaults(func=cmd_watch)

    locks = sub.add_parser(
        "locks", help="list a lock's contenders, flag abandoned ones",
        description=_LOCKS_DESCRIPTION, formatter_class=raw)
    _connection_options(locks, False)
    locks.add_argument("--recheck", type=_recheck_seconds, default=1.0,
                       metavar="SECONDS",
                       help="look again at suspects after SECONDS before "
                            "flagging them; 0: do not (default 1, at most "
                            "%g)" % MAX_RECHECK)
    locks.add_argument("path", metavar="PATH", help="the lock node")
    locks.set_defaults(func=cmd_locks)
    return parser


def _command_index(argv):
    """Index of the sub-command in ``argv`` (skipping global options)."""
    with_value = {"--hosts", "--timeout", "--connect-timeout"}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return i + 1 if i + 1 < len(argv) else None
        if arg in with_value:
            i += 2
        elif arg.startswith("-"):
            i += 1
        else:
            return i
    return None


def parse_args(argv):
    """Parse ``argv`` (without the program name) into a namespace.

    ``bench`` keeps its arguments raw in ``bench_args``; ``lock`` puts what
    follows ``--`` (or, without ``--``, whatever follows PATH) in
    ``command``.
    """
    index = _command_index(argv)
    if index is not None and argv[index] == "bench":
        args = build_parser().parse_args(argv[:index + 1])
        args.bench_args = argv[index + 1:]
        given = any(a == "--hosts" or a.startswith("--hosts=")
                    for a in argv[:index])
        args.bench_hosts = args.hosts if given else None
    else:
        args = build_parser().parse_args(argv)
        command = getattr(args, "command", None) or []
        if (args.command_name == "lock" and "--" in argv[index:]
                and (not command or command[0].startswith("-"))):
            # Options after PATH, then "--": options may come anywhere
            # before "--".  (Without options after PATH, argparse already
            # put what follows PATH, or "--", in ``command``.)
            split = argv.index("--", index)
            args = build_parser(lock_command=False).parse_args(argv[:split])
            args.command = argv[split + 1:]
    if args.hosts is None:
        args.hosts = os.environ.get("ZOOKEEPER_HOSTS") or DEFAULT_HOSTS
    if args.connect_timeout is _UNSET:
        args.connect_timeout = DEFAULT_CONNECT_TIMEOUT
    return args


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------

def _error(message):
    message = " ".join(str(message).split())  # one line, always
    try:
        sys.stderr.write("%s: %s\n" % (PROG, message))
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _describe(exc):
    text = str(exc).strip()
    name = type(exc).__name__
    return "%s: %s" % (name, text) if text else name


def _setup_logging(verbose):
    root = logging.getLogger()
    if verbose:
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr)
    else:
        # No handler would send warnings to logging.lastResort (stderr).
        root.addHandler(logging.NullHandler())
        warnings.simplefilter("ignore")


def main(argv=None):
    """Run the command line; returns the exit status."""
    from kazoo.exceptions import KazooException
    from kazoo.handlers.threading import KazooTimeoutError

    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = 0
    try:
        args = parse_args(argv)
        verbose = args.verbose
        _setup_logging(verbose)
        return args.func(args)
    except CliError as exc:
        _error(exc)
        return exc.code
    except KazooTimeoutError as exc:
        _error("timed out: %s" % (exc,))
        return EXIT_ERROR
    except KazooException as exc:
        _error("ZooKeeper error: %s" % _describe(exc))
        return EXIT_ERROR
    except OSError as exc:
        _error(_describe(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _error("interrupted")
        return 128 + signal.SIGINT
    except _Signalled as exc:
        return 128 + exc.signum
    except Exception as exc:
        if verbose:
            raise
        _error("unexpected error: %s (run with --verbose for details)"
               % _describe(exc))
        return EXIT_ERROR


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def _connect(args):
    """A started :class:`fastzk.KazooClient`, or CliError."""
    from fastzk.client import KazooClient

    try:
        client = KazooClient(hosts=args.hosts)
    except (ValueError, TypeError) as exc:
        raise CliError("invalid --hosts %r: %s" % (args.hosts, exc),
                       EXIT_USAGE)
    except Exception as exc:  # kazoo's ConfigurationError and friends
        raise CliError("invalid --hosts %r: %s" % (args.hosts, _describe(exc)),
                       EXIT_USAGE)
    try:
        _start(client, args.hosts, args.connect_timeout)
    except BaseException:
        _close(client)
        raise
    return client


def _start(client, hosts, timeout):
    """Connect ``client`` within ``timeout`` seconds (None: no limit), or
    CliError saying why each server could not be reached.

    Gives up early when, in each of the last :data:`REFUSED_ROUNDS` rounds
    through the host list, every server refused the connection or did not
    resolve: nothing listens there, and waiting would not change it.
    """
    engine = client._connection
    connected = client.start_async()
    deadline = None if timeout is None else time.monotonic() + timeout
    while not connected.is_set():
        wait = _CONNECT_POLL
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                break
        if connected.wait(wait):
            break
        rounds = engine.failed_rounds()[-REFUSED_ROUNDS:]
        if len(rounds) == REFUSED_ROUNDS and all(
                _refused_outright(errors, client.hosts) for errors in rounds):
            raise CliError("cannot connect to ZooKeeper at %s: %s"
                           % (hosts, _connect_reasons(rounds[-1],
                                                      client.hosts)))
    if not client.connected:
        attempting = engine.connecting_to
        client.stop()
        errors = engine.connect_errors()
        if attempting is not None:
            errors.setdefault(attempting, _NO_ANSWER_YET)
        raise CliError("cannot connect to ZooKeeper at %s within %g s: %s"
                       % (hosts, timeout, _connect_reasons(errors,
                                                           client.hosts)))
    if client.chroot and not client.exists("/"):
        warnings.warn("No chroot path exists, the chroot path should be "
                      "created before normal use.")


def _refused_outright(errors, hosts):
    """Whether every one of ``hosts`` refused or did not resolve."""
    return all(_is_outright(errors.get((host, port))) for host, port in hosts)


def _is_outright(error):
    if isinstance(error, ConnectionRefusedError):
        return True
    # A name that does not exist; not a resolver that failed for now.
    return (isinstance(error, socket.gaierror)
            and error.errno != getattr(socket, "EAI_AGAIN", None))


def _connect_reasons(errors, hosts):
    """``host:port: reason`` for each of ``hosts``, joined by "; " (only
    the reason for a single host)."""
    if len(hosts) == 1:
        return _connect_reason(errors.get(tuple(hosts[0])))
    return "; ".join("%s:%s: %s" % (host, port,
                                     _connect_reason(errors.get((host, port))))
                     for host, port in hosts)


def _connect_reason(error):
    from kazoo.exceptions import ConnectionDropped

    if error is None:
        return "not tried yet"
    if error is _NO_ANSWER_YET:
        return "no answer yet"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return "name not resolved (%s)" % (error.strerror or error)
    if isinstance(error, socket.timeout):
        return "connect timed out"
    if isinstance(error, ConnectionDropped):
        return str(error) or "connection dropped"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror[:1].lower() + error.strerror[1:]
    return _describe(error)


def _close(client):
    try:
        client.stop()
    except Exception:
        pass
    try:
        client.close()
    except Exception:
        pass


def _validate(path):
    from fastzk.lock import validate_path

    try:
        validate_path(path)
    except (TypeError, ValueError) as exc:
        raise CliError(str(exc), EXIT_USAGE)


def _now():
    return datetime.datetime.now().isoformat(timespec="milliseconds")


def _write(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _stdout_gone():
    # Further writes (and the interpreter's final flush) must not fail.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class _SignalHandlers(object):
    """Install ``handler`` for ``signals`` in a with-block, then restore.

    A signal ignored when fastzk started (e.g. SIGINT for a background job
    of a script) stays ignored, and so stays for the command it runs.
    """

    def __init__(self, signals, handler):
        self.signals = signals
        self.handler = handler
        self.saved = {}

    def __enter__(self):
        for signum in self.signals:
            if signal.getsignal(signum) == signal.SIG_IGN:
                continue
            self.saved[signum] = signal.signal(signum, self.handler)
        return self

    def __exit__(self, *exc_info):
        for signum, previous in self.saved.items():
            signal.signal(signum, previous)
        return False


def _signal_name(signum):
    try:
        return signal.Signals(signum).name
    except ValueError:
        return "signal %d" % signum


def _raise_signalled(signum, frame):
    raise _Signalled(signum)


# ---------------------------------------------------------------------------
# fastzk bench
# ---------------------------------------------------------------------------

def cmd_bench(args):
    """Delegate to :func:`fastzk.bench.main`, imported only now."""
    import importlib

    try:
        bench = importlib.import_module("fastzk.bench")
    except ImportError as exc:
        if getattr(exc, "name", None) in ("fastzk.bench", "fastzk"):
            raise CliError("bench: the benchmarks (fastzk.bench) are not "
                           "available in this installation", EXIT_USAGE)
        raise CliError("bench: cannot load the benchmarks: %s"
                       % _describe(exc), EXIT_USAGE)
    bench_args = list(args.bench_args)
    hosts = getattr(args, "bench_hosts", None)  # `fastzk --hosts H bench`
    if hosts and not any(a == "--hosts" or a.startswith("--hosts=")
                         for a in bench_args):
        bench_args = ["--hosts", hosts] + bench_args
    status = bench.main(bench_args)
    if status is None or status is True:
        return EXIT_OK
    if status is False:
        return EXIT_ERROR
    return int(status)


# ---------------------------------------------------------------------------
# fastzk lock
# ---------------------------------------------------------------------------

def _foreground_of_terminal():
    """Whether this process group is the foreground of its terminal (then
    Ctrl-C sends SIGINT to the command too)."""
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgrp()
        except (AttributeError, OSError, ValueError):
            continue
    return False


class _Runner(object):
    """Signal handling around the command: abort while acquiring, forward
    while the command runs, ignore while releasing."""

    ACQUIRING, STARTING, RUNNING, DONE = range(4)

    def __init__(self, forward_sigint):
        self.phase = self.ACQUIRING
        self.child = None
        self.pending = []
        self.forward_sigint = forward_sigint

    def handle(self, signum, frame):
        if self.phase == self.ACQUIRING:
            raise _Signalled(signum)
        if self.phase == self.STARTING:
            self.pending.append(signum)
        elif self.phase == self.RUNNING:
            self._forward(signum)
        # DONE: the command has ended; the lock is being released.

    def _forward(self, signum):
        if signum == signal.SIGINT and not self.forward_sigint:
            return
        try:
            self.child.send_signal(signum)
        except OSError:
            pass  # already gone

    def started(self, child):
        self.child = child
        self.phase = self.RUNNING
        for signum in self.pending:
            self._forward(signum)
        self.pending = []


def _killed_with_us():
    """A ``preexec_fn`` that has the kernel kill the command (SIGKILL) when
    this process dies, or None where that is not available (not Linux).

    The command must not outlive fastzk: the lock is held by fastzk's
    session, and another process takes it once the session expires.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def die_with_parent():
        # In the child, between fork and exec.  The signal is sent when the
        # thread that forked ends: the main thread, which waits for the
        # command.
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # fastzk died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return die_with_parent


def cmd_lock(args):
    from kazoo.exceptions import LockTimeout

    from fastzk.lock import ReadLock, WriteLock

    command = list(args.command or ())
    if not command:
        raise CliError("lock: no COMMAND given (usage: fastzk lock PATH -- "
                       "COMMAND [ARG...])", EXIT_USAGE)
    _validate(args.path)
    identifier = args.identifier
    if identifier is None:
        identifier = "%s:%d" % (socket.gethostname(), os.getpid())
    runner = _Runner(forward_sigint=not _foreground_of_terminal())
    lock = None
    client = None
    with _SignalHandlers(FORWARDED_SIGNALS, runner.handle):
        try:
            client = _connect(args)
            cls = ReadLock if args.shared else WriteLock
            lock = cls(client, args.path, identifier)
            timeout = args.lock_timeout
            try:
                if timeout == 0:
                    acquired = lock.acquire(blocking=False)
                else:
                    acquired = lock.acquire(blocking=True, timeout=timeout)
            except LockTimeout:
                acquired = False
            if not acquired:
                holders = _describe_holders(lock)
                raise CliError(
                    "lock %s not acquired within %g s%s"
                    % (args.path, timeout or 0, holders), EXIT_LOCK_TIMEOUT)
            lock.on_lost(lambda _lock: _error(
                "WARNING: lock %s lost (session expired) while the command "
                "runs" % args.path))
            runner.phase = runner.STARTING
            try:
                child = subprocess.Popen(command,
                                         preexec_fn=_killed_with_us())
            except FileNotFoundError as exc:
                raise CliError("%s: command not found (%s)"
                               % (command[0], exc.strerror), EXIT_NOT_FOUND)
            except OSError as exc:
                raise CliError("%s: cannot execute (%s)"
                               % (command[0], exc.strerror or exc),
                               EXIT_CANNOT_EXECUTE)
            runner.started(child)
            status = child.wait()
            runner.phase = runner.DONE
            return status if status >= 0 else 128 - status
        except _Signalled as exc:
            # Arrived before the command started: give up on the lock.
            _error("lock %s: %s received before the command started; not "
                   "run" % (args.path, _signal_name(exc.signum)))
            return 128 + exc.signum
        finally:
            runner.phase = runner.DONE
            if lock is not None:
                try:
                    lock.release()
                except Exception as exc:
                    _error("could not release lock %s: %s (its node goes "
                           "with the session)" % (args.path, _describe(exc)))
            if client is not None:
                _close(client)


def _describe_holders(lock):
    try:
        names = lock.contenders()
    except Exception:
        return ""
    if not names:
        return ""
    shown = ", ".join(repr(n) for n in names[:3])
    more = " and %d more" % (len(names) - 3) if len(names) > 3 else ""
    return " (contenders: %s%s)" % (shown, more)


# ---------------------------------------------------------------------------
# fastzk watch
# ---------------------------------------------------------------------------

def cmd_watch(args):
    from kazoo.exceptions import KazooException
    from kazoo.handlers.threading import KazooTimeoutError
    from kazoo.protocol.states import EventType

    from fastzk.watches import AddWatchMode

    _validate(args.path)
    events = queue.Queue()
    client = None
    try:
        with _SignalHandlers((signal.SIGTERM,), _raise_signalled):
            client = _connect(args)
            host = client._connection.connected_host if hasattr(
                client._connection, "connected_host") else None
            client.add_listener(lambda state: events.put(("state", state)))
            _write("%s STATE CONNECTED%s" % (
                _now(), " %s:%s" % tuple(host[:2]) if host else ""))
            client.add_watch(args.path, lambda event: events.put(
                ("event", event)), AddWatchMode.PERSISTENT_RECURSIVE)
            _write("%s WATCHING %s" % (_now(), args.path))
            while True:
                try:
                    kind, item = events.get(timeout=0.5)
                except queue.Empty:
                    continue
                if kind == "state":
                    _write("%s STATE %s" % (_now(), item))
                    continue
                event = item
                if event.type == EventType.NONE:
                    _write("%s RESYNC %s state=%s (changes may have been "
                           "missed while disconnected)"
                           % (_now(), event.path, event.state))
                elif event.type in (EventType.CREATED, EventType.CHANGED):
                    try:
                        # Not client.exists(): a synchronous call from this
                        # thread can hold back the next events (see the
                        # engine's read role); the async one leaves the
                        # socket to the session thread.
                        stat = client.exists_async(event.path).get(
                            timeout=args.connect_timeout)
                    except (KazooException, KazooTimeoutError) as exc:
                        extra = "(stat unavailable: %s)" % _describe(exc)
                    else:
                        extra = ("dataLength=%d version=%d"
                                 % (stat.dataLength, stat.version)
                                 if stat is not None else "(gone)")
                    _write("%s %s %s %s" % (_now(), event.type, event.path,
                                            extra))
                else:
                    _write("%s %s %s" % (_now(), event.type, event.path))
    except (KeyboardInterrupt, _Signalled):
        return EXIT_OK
    except BrokenPipeError:
        _stdout_gone()
        return EXIT_OK
    finally:
        if client is not None:
            _close(client)


# ---------------------------------------------------------------------------
# fastzk locks
# ---------------------------------------------------------------------------

class _Contender(object):
    __slots__ = ("node", "seq", "shared", "identifier", "owner", "ctime",
                 "holder", "flags", "unknown")

    def __init__(self, node, seq, shared, identifier, owner, ctime):
        self.node = node
        self.seq = seq
        self.shared = shared
        self.identifier = identifier
        self.owner = owner
        self.ctime = ctime
        self.holder = False
        self.flags = []
        # Its session is on no server that answered, and some did not.
        self.unknown = False


def _contenders(client, path):
    """The contenders of lock ``path``, in lock order, holders marked."""
    from kazoo.exceptions import NoNodeError

    try:
        children = client.get_children(path)
    except NoNodeError:
        raise CliError("%s: no such node" % path)
    found = []
    for child in children:
        match = _CONTENDER_RE.search(child)
        if match is None:
            continue
        try:
            data, stat = client.get(path.rstrip("/") + "/" + child)
        except NoNodeError:
            continue  # released meanwhile
        identifier = (data or b"").decode("utf-8", "replace")
        found.append(_Contender(child, int(match.group(2)),
                                match.group(1) == "__rlock__", identifier,
                                stat.ephemeralOwner, stat.ctime))
    found.sort(key=lambda c: c.seq)
    exclusive_before = False
    for index, contender in enumerate(found):
        if contender.shared:
            contender.holder = not exclusive_before
        else:
            contender.holder = index == 0
            exclusive_before = True
    return found


def _predecessors(contenders, index):
    """The contenders ``contenders[index]`` waits for."""
    me = contenders[index]
    before = contenders[:index]
    if me.shared:
        return [c for c in before if not c.shared]
    return before


class _ServerView(object):
    """Watches and live sessions as the servers report them.

    ``missing`` names the servers that could not be asked, with why;
    ``unavailable`` says why nothing could be checked (no server answered).
    """

    def __init__(self):
        self.watchers = {}  # server path -> set of session ids
        self.live = set()
        self.missing = []
        self.unavailable = None


def _server_view(hosts):
    view = _ServerView()
    disabled = 0
    for host, port in hosts:
        texts, reason = _ask_server(host, port)
        if reason is None:
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


def _ask_server(host, port):
    """``({word: answer}, None)`` for wchp and cons, or ``(None, why
    not)``."""
    texts = {}
    for word in ("wchp", "cons"):
        try:
            text = four_letter_word(host, port, word)
        except OSError as exc:
            return None, _connect_reason(exc)
        if "not in the whitelist" in text or "not executed" in text:
            return None, _DISABLED
        if not text.strip() and word == "cons":
            return None, "empty answer to cons"
        texts[word] = text
    return texts, None


def _parse_wchp(text, watchers):
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


def _suspects(contenders, view, full_path):
    """Set ``flags`` on each contender from ``view``; returns the flagged."""
    flagged = []
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


def _age(seconds):
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


def cmd_locks(args):
    from kazoo.protocol.paths import _prefix_root

    _validate(args.path)
    client = _connect(args)
    try:
        full_path = _prefix_root(client.chroot, args.path)
        hosts = list(client.hosts)
        contenders = _contenders(client, args.path)
        view = _server_view(hosts) if contenders else None
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
            _stdout_gone()
        return EXIT_OK
    finally:
        _close(client)


def _print_contenders(path, contenders, view):
    now = time.time()
    if not contenders:
        _write("%s: no contenders" % path)
        return
    _write("%s: %d contender%s, in lock order"
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
        _write("  ".join(cells))
    if not checked:
        _write("(%s)" % (view.unavailable if view is not None else
                         "not checked"))
        return
    if view.missing:
        _write("(not asked: %s; a contender whose session is on none of the "
               "servers that answered is \"unknown\")"
               % "; ".join(view.missing))
    flagged = [c for c in contenders if c.flags]
    for c in flagged:
        _write("ABANDONED? %d %s: %s" % (
            c.seq, json.dumps(c.identifier, ensure_ascii=False),
            "; ".join(c.flags)))
    if flagged:
        _write("%d of %d contenders look abandoned (see fastzk locks --help)"
               % (len(flagged), len(contenders)))
    else:
        _write("no contender looks abandoned")
