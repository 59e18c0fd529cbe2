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

One module per command (:mod:`fastzk.cli.bench`, :mod:`fastzk.cli.lock`,
:mod:`fastzk.cli.watch`, :mod:`fastzk.cli.locks`), each adding its
sub-command to the parser; what they share is in :mod:`fastzk.cli.common`.
"""

import argparse
import logging
import os
import signal
import sys
import warnings
from typing import List, Optional, Sequence

from fastzk.cli import bench, lock, locks, watch
from fastzk.cli.common import (  # noqa: F401 (the names fastzk.cli had)
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HOSTS,
    EXIT_CANNOT_EXECUTE,
    EXIT_ERROR,
    EXIT_LOCK_TIMEOUT,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    UNSET,
    CliError,
    Parser,
    Signalled,
    VALUE_OPTIONS,
    connection_options,
    describe,
    print_error,
    security_defaults,
)

__all__ = ["main", "EXIT_LOCK_TIMEOUT"]

_MAIN_DESCRIPTION = """\
fastzk command line: benchmarks, locks and watches on a ZooKeeper ensemble.

The ensemble is given by --hosts (default: the environment variable
ZOOKEEPER_HOSTS, else 127.0.0.1:2181), a kazoo connection string such as
"zk1:2181,zk2:2181,zk3:2181/chroot".

Over TLS (--tls, --ca, --cert, --key) and with SASL DIGEST-MD5
(--sasl-user): passwords come from the environment only
($FASTZK_KEY_PASSWORD or the variable named by --key-password-env for an
encrypted key, $FASTZK_SASL_PASSWORD for SASL); $ZOOKEEPER_TLS=1,
$ZOOKEEPER_TLS_CA, $ZOOKEEPER_TLS_CERT, $ZOOKEEPER_TLS_KEY and
$ZOOKEEPER_SASL_USER are the defaults of the options.
"""

_MAIN_EPILOG = """\
exit status: 0 on success; 1 on errors (cannot connect, ZooKeeper errors);
2 on bad usage; `lock` has its own (see `fastzk lock --help`).
Errors are one line on stderr; --verbose shows the client's log.
"""


def build_parser(lock_command: bool = True) -> Parser:
    """The argument parser.  With ``lock_command`` False, ``lock`` takes no
    COMMAND (it is what follows ``--``, split off by :func:`main`)."""
    from fastzk import __version__

    parser = Parser(prog=PROG, description=_MAIN_DESCRIPTION,
                    epilog=_MAIN_EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version",
                        version="%(prog)s " + __version__)
    connection_options(parser, True)
    sub = parser.add_subparsers(dest="command_name", metavar="COMMAND",
                                parser_class=Parser)
    sub.required = True
    bench.add_parser(sub)
    lock.add_parser(sub, lock_command)
    watch.add_parser(sub)
    locks.add_parser(sub)
    return parser


def _command_index(argv: Sequence[str]) -> Optional[int]:
    """Index of the sub-command in ``argv`` (skipping global options)."""
    with_value = VALUE_OPTIONS
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


def parse_args(argv: List[str]) -> argparse.Namespace:
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
        args.bench_security = bench.security_tokens(argv[:index])
    else:
        args = build_parser().parse_args(argv)
        command = getattr(args, "command", None) or []
        if (args.command_name == "lock" and index is not None
                and "--" in argv[index:]
                and (not command or command[0].startswith("-"))):
            # Options after PATH, then "--": options may come anywhere
            # before "--".  (Without options after PATH, argparse already
            # put what follows PATH, or "--", in ``command``.)
            split = argv.index("--", index)
            args = build_parser(lock_command=False).parse_args(argv[:split])
            args.command = argv[split + 1:]
    if args.hosts is None:
        args.hosts = os.environ.get("ZOOKEEPER_HOSTS") or DEFAULT_HOSTS
    if args.connect_timeout is UNSET:
        args.connect_timeout = DEFAULT_CONNECT_TIMEOUT
    security_defaults(args, os.environ)
    return args


def _setup_logging(verbose: int) -> None:
    """Log on stderr with ``verbose`` (-v: INFO, -vv: DEBUG); otherwise
    nothing, and no warnings."""
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    from kazoo.exceptions import KazooException
    from kazoo.handlers.threading import KazooTimeoutError

    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = 0
    try:
        args = parse_args(argv)
        verbose = args.verbose
        _setup_logging(verbose)
        status: int = args.func(args)
        return status
    except CliError as exc:
        print_error(exc)
        return exc.code
    except KazooTimeoutError as exc:
        print_error("timed out: %s" % (exc,))
        return EXIT_ERROR
    except KazooException as exc:
        print_error("ZooKeeper error: %s" % describe(exc))
        return EXIT_ERROR
    except OSError as exc:
        print_error(describe(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        print_error("interrupted")
        return 128 + signal.SIGINT
    except Signalled as exc:
        return 128 + exc.signum
    except Exception as exc:
        if verbose:
            raise
        print_error("unexpected error: %s (run with --verbose for details)"
                    % describe(exc))
        return EXIT_ERROR


