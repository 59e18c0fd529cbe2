"""``fastzk lock PATH -- COMMAND...``: run a command while holding a lock,
like ``flock(1)`` for a cluster."""

import argparse
import os
import signal
import socket
import subprocess
import sys
from types import FrameType
from typing import TYPE_CHECKING, Callable, List, Optional

from fastzk.cli.common import (
    EXIT_CANNOT_EXECUTE,
    EXIT_LOCK_TIMEOUT,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    CliError,
    Parser,
    SignalHandlers,
    Signalled,
    check_path,
    close_client,
    connect,
    connection_options,
    describe,
    print_error,
    seconds,
    signal_name,
)

if TYPE_CHECKING:
    from fastzk.lock import Lock

_PR_SET_PDEATHSIG = 1  # linux/prctl.h

#: Signals ``fastzk lock`` forwards to the command it runs.
FORWARDED_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2")
    if hasattr(signal, name)
)

DESCRIPTION = """\
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

EPILOG = """\
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


def add_parser(subparsers: "argparse._SubParsersAction[Parser]",
               lock_command: bool = True) -> None:
    """Add ``lock`` to ``subparsers``; with ``lock_command`` False it takes
    no COMMAND (:func:`fastzk.cli.parse_args` splits off what follows
    ``--``)."""
    lock = subparsers.add_parser(
        "lock", help="run a command while holding a lock",
        usage="%(prog)s [options] PATH -- COMMAND [ARG...]",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    lock.add_argument(
        "--timeout", dest="lock_timeout", type=seconds, default=None,
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
    connection_options(lock, False)
    lock.add_argument("path", metavar="PATH", help="the lock node")
    if lock_command:
        lock.add_argument("command", metavar="COMMAND",
                          nargs=argparse.REMAINDER,
                          help="the command and its arguments, after --")
    lock.set_defaults(func=cmd_lock)


def _foreground_of_terminal() -> bool:
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

    def __init__(self, forward_sigint: bool) -> None:
        self.phase = self.ACQUIRING
        self.child: Optional["subprocess.Popen[bytes]"] = None
        self.pending: List[int] = []
        self.forward_sigint = forward_sigint

    def handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.phase == self.ACQUIRING:
            raise Signalled(signum)
        if self.phase == self.STARTING:
            self.pending.append(signum)
        elif self.phase == self.RUNNING:
            self._forward(signum)
        # DONE: the command has ended; the lock is being released.

    def _forward(self, signum: int) -> None:
        if signum == signal.SIGINT and not self.forward_sigint:
            return
        # RUNNING (the only phase that forwards) starts with the child set.
        assert self.child is not None
        try:
            self.child.send_signal(signum)
        except OSError:
            pass  # already gone

    def started(self, child: "subprocess.Popen[bytes]") -> None:
        self.child = child
        self.phase = self.RUNNING
        for signum in self.pending:
            self._forward(signum)
        self.pending = []


def _killed_with_us() -> Optional[Callable[[], None]]:
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

    def die_with_parent() -> None:
        # In the child, between fork and exec.  The signal is sent when the
        # thread that forked ends: the main thread, which waits for the
        # command.
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # fastzk died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return die_with_parent


def cmd_lock(args: argparse.Namespace) -> int:
    """Run ``args.command`` holding the lock ``args.path``; its exit
    status."""
    from kazoo.exceptions import LockTimeout

    from fastzk.lock import ReadLock, WriteLock

    command: List[str] = list(args.command or ())
    if not command:
        raise CliError("lock: no COMMAND given (usage: fastzk lock PATH -- "
                       "COMMAND [ARG...])", EXIT_USAGE)
    check_path(args.path)
    identifier: Optional[str] = args.identifier
    if identifier is None:
        identifier = "%s:%d" % (socket.gethostname(), os.getpid())
    runner = _Runner(forward_sigint=not _foreground_of_terminal())
    lock: Optional[Lock] = None
    client = None
    with SignalHandlers(FORWARDED_SIGNALS, runner.handle):
        try:
            client = connect(args)
            cls = ReadLock if args.shared else WriteLock
            lock = cls(client, args.path, identifier)
            timeout: Optional[float] = args.lock_timeout
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
            lock.on_lost(lambda _lock: print_error(
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
        except Signalled as exc:
            # Arrived before the command started: give up on the lock.
            print_error("lock %s: %s received before the command started; "
                        "not run" % (args.path, signal_name(exc.signum)))
            return 128 + exc.signum
        finally:
            runner.phase = runner.DONE
            if lock is not None:
                try:
                    lock.release()
                except Exception as exc:
                    print_error("could not release lock %s: %s (its node "
                                "goes with the session)"
                                % (args.path, describe(exc)))
            if client is not None:
                close_client(client)


def _describe_holders(lock: "Lock") -> str:
    try:
        names = lock.contenders()
    except Exception:
        return ""
    if not names:
        return ""
    shown = ", ".join(repr(n) for n in names[:3])
    more = " and %d more" % (len(names) - 3) if len(names) > 3 else ""
    return " (contenders: %s%s)" % (shown, more)


