"""What the commands of :mod:`fastzk.cli` share: exit statuses, errors as
one line, option types, connecting (and saying why not), output and signal
handling."""

import argparse
import datetime
import os
import signal
import socket
import sys
import threading
import time
import warnings
from types import FrameType
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    List,
    Literal,
    Mapping,
    NoReturn,
    Optional,
    Sequence,
    Tuple,
    Union,
)

if TYPE_CHECKING:
    from fastzk.client import KazooClient

#: ``(host, port)`` of a server.
Address = Tuple[str, int]
#: A signal handler as :func:`signal.signal` takes it.
Handler = Union[Callable[[int, Optional[FrameType]], Any], int,
                signal.Handlers, None]

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
_NO_ANSWER_YET = object()  # an attempt under way at the deadline
#: An option not given (None: given as "no limit").
UNSET = object()

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


class CliError(Exception):
    """An error reported as one line on stderr, with an exit status."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


class Signalled(BaseException):
    """Raised in the main thread by a signal handler of ours."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


# ---------------------------------------------------------------------------
# Argument parsing
# ---------------------------------------------------------------------------

class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are a :class:`CliError`."""

    def error(self, message: str) -> NoReturn:
        # One line, like every other error: "fastzk: lock: ...".
        prog = self.prog.split()
        where = " ".join(prog[1:])
        raise CliError("%s%s (see %s --help)" % (
            where + ": " if where else "", message, self.prog), EXIT_USAGE)


def connection_options(parser: argparse.ArgumentParser,
                       top_level: bool) -> None:
    """Add --hosts, --connect-timeout (and, at the top level, --timeout)
    and --verbose to ``parser``; a sub-command's copy overrides the top
    level's only when given."""
    default: Optional[str] = None if top_level else argparse.SUPPRESS
    parser.add_argument(
        "--hosts", default=default, metavar="HOSTS",
        help="ZooKeeper connection string (default: $ZOOKEEPER_HOSTS or %s)"
        % DEFAULT_HOSTS)
    names = ("--timeout", "--connect-timeout") if top_level else (
        "--connect-timeout",)
    parser.add_argument(
        *names, dest="connect_timeout", type=seconds,
        default=UNSET if top_level else argparse.SUPPRESS,
        metavar="SECONDS",
        help="how long to try to connect (default %g; inf: no limit); a "
             "host list whose every server refuses the connection or does "
             "not resolve fails at once" % DEFAULT_CONNECT_TIMEOUT)
    parser.add_argument(
        "-v", "--verbose", action="count", default=0 if top_level
        else argparse.SUPPRESS,
        help="log the client's activity on stderr (-vv: debug)")
    _security_options(parser, top_level)


def _security_options(parser: argparse.ArgumentParser,
                      top_level: bool) -> None:
    """Add the TLS and SASL options to ``parser`` (see
    :func:`connection_options`)."""
    value: Optional[str] = None if top_level else argparse.SUPPRESS
    flag: Union[bool, str] = False if top_level else argparse.SUPPRESS
    group = parser.add_argument_group(
        "TLS and SASL",
        "passwords are never given on the command line: they are read "
        "from the environment")
    group.add_argument(
        "--tls", action="store_true", default=flag,
        help="connect over TLS (implied by --ca, --cert and --key; "
             "default: on when $%s is 1)" % ENV_TLS)
    group.add_argument(
        "--ca", default=value, metavar="FILE",
        help="PEM file of the certificate authorities the servers' "
             "certificates must chain to (default: $%s, else the system's)"
             % ENV_CA)
    group.add_argument(
        "--cert", default=value, metavar="FILE",
        help="PEM file of this client's certificate, with --key "
             "(default: $%s)" % ENV_CERT)
    group.add_argument(
        "--key", default=value, metavar="FILE",
        help="PEM file of this client's private key, with --cert "
             "(default: $%s)" % ENV_KEY)
    group.add_argument(
        "--key-password-env", default=value, metavar="NAME",
        help="the environment variable holding the password of an "
             "encrypted --key (default: %s)" % ENV_KEY_PASSWORD)
    group.add_argument(
        "--no-verify", dest="verify_certs", action="store_false",
        default=True if top_level else argparse.SUPPRESS,
        help="do not verify the servers' certificates (insecure)")
    group.add_argument(
        "--check-hostname", action="store_true", default=flag,
        help="check that a server's certificate names the host of --hosts")
    group.add_argument(
        "--sasl-user", default=value, metavar="USER",
        help="authenticate with SASL DIGEST-MD5 as USER, the password in "
             "$%s (default: $%s)" % (ENV_SASL_PASSWORD, ENV_SASL_USER))


#: The options of :func:`connection_options` that take a value.
VALUE_OPTIONS = frozenset((
    "--hosts", "--timeout", "--connect-timeout", "--ca", "--cert", "--key",
    "--key-password-env", "--sasl-user"))

ENV_TLS = "ZOOKEEPER_TLS"
ENV_CA = "ZOOKEEPER_TLS_CA"
ENV_CERT = "ZOOKEEPER_TLS_CERT"
ENV_KEY = "ZOOKEEPER_TLS_KEY"
ENV_KEY_PASSWORD = "FASTZK_KEY_PASSWORD"
ENV_SASL_USER = "ZOOKEEPER_SASL_USER"
ENV_SASL_PASSWORD = "FASTZK_SASL_PASSWORD"


def security_defaults(args: argparse.Namespace,
                      environ: Mapping[str, str]) -> None:
    """Fill the TLS and SASL options not given from ``environ``; any of
    --ca, --cert and --key turns on --tls."""
    for name, variable in (("ca", ENV_CA), ("cert", ENV_CERT),
                           ("key", ENV_KEY), ("sasl_user", ENV_SASL_USER)):
        if getattr(args, name) is None:
            setattr(args, name, environ.get(variable) or None)
    if args.key_password_env is None:
        args.key_password_env = ENV_KEY_PASSWORD
    if environ.get(ENV_TLS, "").strip().lower() in ("1", "true", "yes"):
        args.tls = True
    if args.ca or args.cert or args.key:
        args.tls = True


def client_options(args: argparse.Namespace,
                   environ: Mapping[str, str]) -> Dict[str, Any]:
    """The TLS and SASL arguments of :class:`fastzk.KazooClient` that
    ``args`` asks for, passwords read from ``environ``; CliError (bad
    usage) for a password that is not there."""
    options: Dict[str, Any] = {}
    if getattr(args, "tls", False):
        if bool(args.key) != bool(args.cert):
            raise CliError("--cert and --key go together (a client "
                           "certificate and its private key)", EXIT_USAGE)
        options.update(
            use_ssl=True, ca=args.ca, certfile=args.cert,
            keyfile=args.key, verify_certs=args.verify_certs,
            check_hostname=args.check_hostname,
            keyfile_password=environ.get(args.key_password_env))
    if getattr(args, "sasl_user", None):
        password = environ.get(ENV_SASL_PASSWORD)
        if password is None:
            raise CliError("--sasl-user needs the password in $%s"
                           % ENV_SASL_PASSWORD, EXIT_USAGE)
        options["sasl_options"] = {"mechanism": "DIGEST-MD5",
                                   "username": args.sasl_user,
                                   "password": password}
    return options


def seconds(text: str) -> Optional[float]:
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


# ---------------------------------------------------------------------------
# Errors and output
# ---------------------------------------------------------------------------

def print_error(message: object) -> None:
    """Write ``message`` on stderr as one line, after the program name."""
    line = " ".join(str(message).split())  # one line, always
    try:
        sys.stderr.write("%s: %s\n" % (PROG, line))
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def describe(exc: object) -> str:
    """``ExceptionName: message`` (the name alone without a message)."""
    text = str(exc).strip()
    name = type(exc).__name__
    return "%s: %s" % (name, text) if text else name


def timestamp() -> str:
    """The local time, to the millisecond, in ISO 8601."""
    return datetime.datetime.now().isoformat(timespec="milliseconds")


def write_line(line: str) -> None:
    """Write ``line`` on stdout and flush it at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def stdout_gone() -> None:
    """Point stdout at /dev/null once its reader has gone (a broken pipe)."""
    # Further writes (and the interpreter's final flush) must not fail.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class SignalHandlers(object):
    """Install ``handler`` for ``signals`` in a with-block, then restore.

    A signal ignored when fastzk started (e.g. SIGINT for a background job
    of a script) stays ignored, and so stays for the command it runs.
    """

    def __init__(self, signals: Sequence[int], handler: Handler) -> None:
        self.signals = signals
        self.handler = handler
        self.saved: Dict[int, Handler] = {}

    def __enter__(self) -> "SignalHandlers":
        for signum in self.signals:
            if signal.getsignal(signum) == signal.SIG_IGN:
                continue
            self.saved[signum] = signal.signal(signum, self.handler)
        return self

    def __exit__(self, *exc_info: object) -> "Literal[False]":
        for signum, previous in self.saved.items():
            signal.signal(signum, previous)
        return False


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15, and so on."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return "signal %d" % signum


def raise_signalled(signum: int, frame: Optional[FrameType]) -> NoReturn:
    """A signal handler that raises :exc:`Signalled` in the main thread."""
    raise Signalled(signum)


# ---------------------------------------------------------------------------
# Connecting
# ---------------------------------------------------------------------------

def connect(args: argparse.Namespace) -> "KazooClient":
    """A started :class:`fastzk.KazooClient`, or CliError."""
    from kazoo.exceptions import ConfigurationError

    from fastzk.client import KazooClient

    options = client_options(args, os.environ)
    try:
        client = KazooClient(hosts=args.hosts, **options)
    except ConfigurationError as exc:  # a TLS file, a key password, SASL
        raise CliError("invalid TLS or SASL configuration: %s"
                       % describe(exc))
    except (ValueError, TypeError) as exc:
        raise CliError("invalid --hosts %r: %s" % (args.hosts, exc),
                       EXIT_USAGE)
    except Exception as exc:
        raise CliError("invalid --hosts %r: %s" % (args.hosts, describe(exc)),
                       EXIT_USAGE)
    hosts: str = args.hosts
    timeout: Optional[float] = args.connect_timeout
    try:
        _start(client, hosts, timeout)
    except BaseException:
        close_client(client)
        raise
    return client


def _start(client: "KazooClient", hosts: str,
           timeout: Optional[float]) -> None:
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
        fatal: Optional[BaseException] = engine.fatal_error
        if fatal is not None:
            raise CliError("cannot connect to ZooKeeper at %s: %s"
                           % (hosts, describe(fatal)))
        rounds: List[Dict[Address, BaseException]] = (
            engine.failed_rounds()[-REFUSED_ROUNDS:])
        if len(rounds) == REFUSED_ROUNDS and all(
                _refused_outright(errors, client.hosts) for errors in rounds):
            raise CliError("cannot connect to ZooKeeper at %s: %s"
                           % (hosts, _connect_reasons(rounds[-1],
                                                      client.hosts)))
    if not client.connected:
        attempting: Optional[Address] = engine.connecting_to
        client.stop()
        errors: Dict[Address, object] = dict(engine.connect_errors())
        if attempting is not None:
            errors.setdefault(attempting, _NO_ANSWER_YET)
        within = "" if timeout is None else " within %g s" % timeout
        raise CliError("cannot connect to ZooKeeper at %s%s: %s"
                       % (hosts, within, _connect_reasons(errors,
                                                          client.hosts)))
    if client.chroot and not client.exists("/"):
        warnings.warn("No chroot path exists, the chroot path should be "
                      "created before normal use.")


def _refused_outright(errors: Mapping[Address, object],
                      hosts: Sequence[Address]) -> bool:
    """Whether every one of ``hosts`` refused or did not resolve."""
    return all(_is_outright(errors.get((host, port))) for host, port in hosts)


def _is_outright(error: object) -> bool:
    if isinstance(error, ConnectionRefusedError):
        return True
    # A name that does not exist; not a resolver that failed for now.
    return (isinstance(error, socket.gaierror)
            and error.errno != getattr(socket, "EAI_AGAIN", None))


def _connect_reasons(errors: Mapping[Address, object],
                     hosts: Sequence[Address]) -> str:
    """``host:port: reason`` for each of ``hosts``, joined by "; " (only
    the reason for a single host)."""
    if len(hosts) == 1:
        host, port = hosts[0]
        return connect_reason(errors.get((host, port)))
    return "; ".join("%s:%s: %s" % (host, port,
                                     connect_reason(errors.get((host, port))))
                     for host, port in hosts)


def connect_reason(error: object) -> str:
    """Why a connection attempt failed with ``error``, in a few words."""
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
    return describe(error)


def close_client(client: "KazooClient") -> None:
    """Stop and close ``client``, ignoring any error."""
    try:
        client.stop()
    except Exception:
        pass
    try:
        client.close()
    except Exception:
        pass


def check_path(path: str) -> None:
    """Raise :exc:`CliError` (bad usage) for an invalid ZooKeeper path."""
    from fastzk.lock import validate_path

    try:
        validate_path(path)
    except (TypeError, ValueError) as exc:
        raise CliError(str(exc), EXIT_USAGE)


