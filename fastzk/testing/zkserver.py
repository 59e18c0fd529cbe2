"""Start and control real ZooKeeper servers for the test suite.

Nothing here depends on pytest.  The servers are Debian's ZooKeeper (the
``zookeeper`` package: ``/usr/share/java/zookeeper.jar`` run by Java 17);
:func:`find_zookeeper` raises a clear error when it is missing, and every
start failure raises with the tail of the server's log.

Typical use::

    server = ZooKeeperServer("/tmp/zk-data")
    server.start()            # starts the JVM and waits until it serves
    server.address            # "127.0.0.1:PORT"
    server.zxid()             # last zxid, from the ``srvr`` four-letter word
    server.stop()

A server can also serve TLS on a second, secure client port (``tls=``, a
:class:`ServerTls`; certificates from :mod:`fastzk.testing.certs`) and
authenticate clients with SASL DIGEST-MD5 (``sasl=``, a
:class:`ServerSasl`)::

    files = make_tls_files("/tmp/tls")
    server = ZooKeeperServer(tls=ServerTls(files.server_pem, files.ca),
                             sasl=ServerSasl({"alice": "secret"}))
    server.start()
    server.secure_address     # "127.0.0.1:SECURE_PORT"; address stays plain
"""

import atexit
import ctypes
import ctypes.util
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from types import TracebackType
from typing import (
    IO,
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
)

from fastzk.fourletter import four_letter_word

__all__ = [
    "DEFAULT_JAR",
    "ZooKeeperEnsemble",
    "ZooKeeperServer",
    "EnsembleMember",
    "ServerSasl",
    "ServerTls",
    "expire_session",
    "find_zookeeper",
    "four_letter_word",
    "free_port",
    "zookeeper_version",
]

DEFAULT_JAR = "/usr/share/java/zookeeper.jar"
DEFAULT_CONF_DIR = "/etc/zookeeper/conf"
# Debian's zookeeper.jar names slf4j-api in its manifest but no binding, so the
# server logs nothing at all.  These two jars give it log4j 1.2, configured by
# a log4j.properties of our own that writes to a file next to zoo.cfg.
LOG_BINDING_JARS = (
    "/usr/share/java/slf4j-log4j12.jar",
    "/usr/share/java/log4j-1.2.jar",
)
# The Netty connection factory, which TLS needs, uses these two jars that
# Debian's zookeeper.jar does not name in its manifest.
NETTY_JARS = (
    "/usr/share/java/netty-codec.jar",
    "/usr/share/java/netty-resolver.jar",
)
NETTY_FACTORY = "org.apache.zookeeper.server.NettyServerCnxnFactory"
SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
NOT_INSTALLED = (
    "ZooKeeper not installed: run `make test` (it installs Debian's "
    "zookeeper) or apt-get install -y zookeeper"
)

STANDALONE_MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
QUORUM_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"

DEFAULT_START_TIMEOUT = 30.0

DEFAULT_JVM_OPTS = (
    "-Xms64m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-Djava.net.preferIPv4Stack=true",
    # A restarted quorum member must find the others again quickly; the
    # default back-off of leader election grows to 60 s.
    "-Dzookeeper.fastleader.maxNotificationInterval=2000",
    "-Dzookeeper.jmx.log4j.disable=true",
)


# ---------------------------------------------------------------------------
# Locating the installation
# ---------------------------------------------------------------------------

def find_java() -> str:
    """Return the path of the ``java`` executable, or raise RuntimeError."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = os.path.join(java_home, "bin", "java")
        if os.access(candidate, os.X_OK):
            return candidate
    java = shutil.which("java")
    if not java:
        raise RuntimeError(NOT_INSTALLED + " (no `java` executable found)")
    return java


def find_zookeeper() -> str:
    """Return the Java classpath that runs the installed ZooKeeper server.

    Raises RuntimeError with installation instructions when the jar or the
    ``java`` executable is missing.
    """
    jar = os.environ.get("FASTZK_ZOOKEEPER_JAR", DEFAULT_JAR)
    if not os.path.isfile(jar):
        raise RuntimeError(NOT_INSTALLED + " (missing %s)" % jar)
    find_java()
    parts = []
    if os.path.isdir(DEFAULT_CONF_DIR):
        parts.append(DEFAULT_CONF_DIR)
    parts.append(jar)
    parts.extend(p for p in LOG_BINDING_JARS if os.path.isfile(p))
    return ":".join(parts)


def zookeeper_version() -> Optional[str]:
    """Return the installed ZooKeeper version (e.g. ``"3.8.0"``), or None."""
    jar = os.environ.get("FASTZK_ZOOKEEPER_JAR", DEFAULT_JAR)
    try:
        with zipfile.ZipFile(jar) as zf:
            props = zf.read(
                "META-INF/maven/org.apache.zookeeper/zookeeper/pom.properties"
            ).decode("utf-8", "replace")
    except (OSError, KeyError, zipfile.BadZipFile):
        match = re.search(r"zookeeper-([\d.]+)\.jar$", os.path.realpath(jar))
        return match.group(1) if match else None
    match = re.search(r"^version=(\S+)", props, re.M)
    return match.group(1) if match else None


# ---------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------

_port_lock = threading.Lock()
_handed_out: "set[int]" = set()
_port_rng = random.Random(os.getpid() ^ int(time.time() * 1000))


def _ephemeral_range() -> Tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port: int) -> bool:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # Deliberately no SO_REUSEADDR: a port in TIME_WAIT counts as taken.
        sock.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def free_port() -> int:
    """Return a loopback TCP port that is free now and was not handed out
    before by this process.

    Ports are drawn from outside the kernel's ephemeral range when possible,
    so that a client's outgoing connection cannot grab a server's port
    between the moment it is chosen and the moment the server binds it.
    """
    low, high = _ephemeral_range()
    if low - 10000 >= 1024:
        lo, hi = 10000, low - 1
    else:
        lo, hi = 1024, 65535
    with _port_lock:
        for _ in range(1000):
            port = _port_rng.randint(lo, hi)
            if port in _handed_out:
                continue
            if _bindable(port):
                _handed_out.add(port)
                return port
        for _ in range(100):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            sock.close()
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError("could not find a free TCP port")


# ---------------------------------------------------------------------------
# Four-letter words
# ---------------------------------------------------------------------------

def _parse_mode(text: str) -> Optional[str]:
    match = re.search(r"^Mode:\s*(\S+)", text, re.M)
    return match.group(1) if match else None


def _parse_zxid(text: str) -> Optional[int]:
    match = re.search(r"^Zxid:\s*(0x[0-9a-fA-F]+)", text, re.M)
    return int(match.group(1), 16) if match else None


# ---------------------------------------------------------------------------
# Process bookkeeping
# ---------------------------------------------------------------------------

_live_servers: "set[ZooKeeperServer]" = set()
_live_lock = threading.Lock()


def _kill_leftovers() -> None:
    with _live_lock:
        servers = list(_live_servers)
    for server in servers:
        try:
            server.kill()
        except Exception:
            pass


atexit.register(_kill_leftovers)


def _preexec_for_main_thread() -> Optional[Callable[[], None]]:
    # PR_SET_PDEATHSIG fires when the *thread* that forked dies, so it is only
    # safe when the server is started from the main thread.  It makes the JVM
    # die with the test process even when that is SIGKILLed.
    if threading.current_thread() is not threading.main_thread():
        return None
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return None
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
    except OSError:
        return None
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)

    return preexec


# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------

_Server = TypeVar("_Server", bound="ZooKeeperServer")
_Ensemble = TypeVar("_Ensemble", bound="ZooKeeperEnsemble")

_LOG4J_TEMPLATE = """\
log4j.rootLogger=INFO, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File={log_file}
log4j.appender.FILE.Append=true
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{{ISO8601}} %-5p [%t:%C{{1}}@%L] - %m%n
"""


TLS_PROTOCOLS = ("TLSv1.2", "TLSv1.3")
CLIENT_AUTH_MODES = ("need", "want", "none")
# ZooKeeper offers TLS 1.3 only when its protocol, its enabled protocols and
# its cipher suites all say so; these are the TLS 1.3 suites of Java 17.
TLS13_CIPHER_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384")


@dataclass(frozen=True)
class ServerTls:
    """TLS on a server's secure client port (Netty, PEM stores).

    :param keystore: PEM file with the server's private key in PKCS#8
        followed by its certificate chain (``ssl.keyStore.location``), e.g.
        :attr:`fastzk.testing.certs.TlsFiles.server_pem`.
    :param truststore: PEM file with the CA certificates that client
        certificates must chain to (``ssl.trustStore.location``).
    :param client_auth: ``"need"`` (a client certificate is required, the
        server's default), ``"want"`` (checked when given) or ``"none"``.
    :param protocol: ``"TLSv1.2"`` (the server's default) or ``"TLSv1.3"``
        (then only TLS 1.3 is offered).
    :param keystore_password: Password of an encrypted key in ``keystore``.
    """

    keystore: str
    truststore: str
    client_auth: str = "need"
    protocol: str = "TLSv1.2"
    keystore_password: Optional[str] = None

    def __post_init__(self) -> None:
        if self.client_auth not in CLIENT_AUTH_MODES:
            raise ValueError("client_auth must be one of %s, not %r"
                             % (", ".join(CLIENT_AUTH_MODES),
                                self.client_auth))
        if self.protocol not in TLS_PROTOCOLS:
            raise ValueError("protocol must be one of %s, not %r"
                             % (", ".join(TLS_PROTOCOLS), self.protocol))
        for path in (self.keystore, self.truststore):
            if not os.path.isfile(path):
                raise ValueError("no such PEM file: %r" % path)

    def config(self) -> Dict[str, object]:
        """The ``ssl.*`` zoo.cfg entries (the server turns each into a
        ``zookeeper.ssl.*`` system property)."""
        config: Dict[str, object] = {
            "ssl.keyStore.location": os.path.abspath(self.keystore),
            "ssl.keyStore.type": "PEM",
            "ssl.trustStore.location": os.path.abspath(self.truststore),
            "ssl.trustStore.type": "PEM",
            "ssl.clientAuth": self.client_auth,
        }
        if self.keystore_password is not None:
            config["ssl.keyStore.password"] = self.keystore_password
        if self.protocol == "TLSv1.3":
            config["ssl.protocol"] = "TLSv1.3"
            config["ssl.enabledProtocols"] = "TLSv1.3"
            config["ssl.ciphersuites"] = ",".join(TLS13_CIPHER_SUITES)
        return config


@dataclass(frozen=True)
class ServerSasl:
    """SASL DIGEST-MD5 authentication of clients.

    The server gets a JAAS file whose ``Server`` section names
    ZooKeeper's DigestLoginModule with ``users`` and the SASL
    authentication provider; a client that authenticates as user ``u``
    has the identity ``sasl:u``, usable in ACLs.

    :param users: User name to password.
    :param required: Close every session that has not authenticated with
        SASL (``sessionRequireClientSASLAuth``); by default a client may
        also work without authenticating.
    """

    users: Mapping[str, str]
    required: bool = False

    def __post_init__(self) -> None:
        if not self.users:
            raise ValueError("ServerSasl needs at least one user")
        for user, password in self.users.items():
            for text in (user, password):
                if not re.fullmatch(r"[A-Za-z0-9_.@-]+", text):
                    raise ValueError(
                        "SASL user names and passwords here are limited to "
                        "letters, digits and _.@-: %r" % text)

    def jaas(self) -> str:
        """The text of the JAAS login configuration."""
        users = "".join('\n    user_%s="%s"' % item
                        for item in self.users.items())
        return ("Server {\n    org.apache.zookeeper.server.auth."
                "DigestLoginModule required%s;\n};\n" % users)

    def config(self) -> Dict[str, object]:
        """The zoo.cfg entries."""
        config: Dict[str, object] = {"authProvider.1": SASL_PROVIDER}
        if self.required:
            config["sessionRequireClientSASLAuth"] = "true"
        return config


class ZooKeeperServer:
    """One ZooKeeper server process (standalone by default).

    ``data_dir`` holds everything: ``zoo.cfg``, ``log4j.properties``, the
    server log ``zookeeper.log``, the JVM's stdout/stderr ``zookeeper.out``
    and the snapshots and transaction logs under ``data/``.  When it is None
    a temporary directory is created and removed by :meth:`cleanup`.

    The client port is fixed at construction (``client_port`` or a free
    one), so :meth:`restart` brings the server back on the same address with
    the same data.  ``extra_config`` (a dict) adds or overrides zoo.cfg
    entries.  Defaults: ``minSessionTimeout`` = 2 ticks,
    ``maxSessionTimeout`` = 60000 ms, ``forceSync=no`` (tests do not need
    fsync), the four-letter words all enabled, no AdminServer, no per-host
    connection limit, extended types (TTL nodes) enabled.

    ``tls`` (a :class:`ServerTls`) adds a secure client port
    (``secure_client_port`` or a free one) beside the plain one, with the
    Netty connection factory, which then serves both; ``sasl`` (a
    :class:`ServerSasl`) turns on SASL authentication.
    """

    main_class = STANDALONE_MAIN

    def __init__(
        self,
        data_dir: Optional[str] = None,
        client_port: Optional[int] = None,
        tick_time: int = 500,
        extra_config: Optional[Mapping[str, object]] = None,
        min_session_timeout: Optional[int] = None,
        max_session_timeout: int = 60000,
        jvm_opts: Optional[Sequence[str]] = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        tls: Optional[ServerTls] = None,
        secure_client_port: Optional[int] = None,
        sasl: Optional[ServerSasl] = None,
    ) -> None:
        if secure_client_port and tls is None:
            raise ValueError("secure_client_port needs tls")
        self._owns_dir = data_dir is None
        if data_dir is None:
            data_dir = tempfile.mkdtemp(prefix="fastzk-zk-")
        self.base_dir = os.path.abspath(str(data_dir))
        self.data_dir = os.path.join(self.base_dir, "data")
        self.config_path = os.path.join(self.base_dir, "zoo.cfg")
        self.log_path = os.path.join(self.base_dir, "zookeeper.log")
        self.out_path = os.path.join(self.base_dir, "zookeeper.out")
        self.log4j_path = os.path.join(self.base_dir, "log4j.properties")
        self.jaas_path = os.path.join(self.base_dir, "jaas.conf")
        self.host = "127.0.0.1"
        self.port = client_port if client_port else free_port()
        self.tls = tls
        self.sasl = sasl
        #: The TLS client port, or None without ``tls``.
        self.secure_port: Optional[int] = None
        if tls is not None:
            self.secure_port = (secure_client_port if secure_client_port
                                else free_port())
        self.tick_time = tick_time
        self.min_session_timeout = (
            min_session_timeout if min_session_timeout else 2 * tick_time
        )
        self.max_session_timeout = max_session_timeout
        self.extra_config: Dict[str, object] = dict(extra_config or {})
        self.jvm_opts = list(DEFAULT_JVM_OPTS if jvm_opts is None else jvm_opts)
        self.start_timeout = start_timeout
        self._proc: Optional["subprocess.Popen[bytes]"] = None
        self._out_file: Optional[IO[bytes]] = None
        self._lock = threading.RLock()
        #: Exit status of the last process, once stopped or killed.
        self.returncode: Optional[int] = None

    # -- configuration -----------------------------------------------------

    def _config(self) -> Dict[str, object]:
        config: Dict[str, object] = {
            "tickTime": self.tick_time,
            "dataDir": self.data_dir,
            "clientPort": self.port,
            "clientPortAddress": self.host,
            "minSessionTimeout": self.min_session_timeout,
            "maxSessionTimeout": self.max_session_timeout,
            "4lw.commands.whitelist": "*",
            "admin.enableServer": "false",
            "maxClientCnxns": 0,
            "extendedTypesEnabled": "true",
            "forceSync": "no",
            "autopurge.purgeInterval": 0,
        }
        if self.tls is not None:
            config["secureClientPort"] = self.secure_port
            config["secureClientPortAddress"] = self.host
            config["serverCnxnFactory"] = NETTY_FACTORY
            config.update(self.tls.config())
        if self.sasl is not None:
            config.update(self.sasl.config())
        config.update(self.extra_config)
        return config

    def _write_files(self) -> None:
        os.makedirs(self.data_dir, exist_ok=True)
        lines = ["%s=%s" % (k, v) for k, v in self._config().items()
                 if v is not None]
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(self.log4j_path, "w") as f:
            f.write(_LOG4J_TEMPLATE.format(log_file=self.log_path))
        if self.sasl is not None:
            with open(self.jaas_path, "w") as f:
                f.write(self.sasl.jaas())

    def _classpath(self) -> str:
        parts = [self.base_dir, find_zookeeper()]
        if self._config().get("serverCnxnFactory") == NETTY_FACTORY:
            for jar in NETTY_JARS:
                if not os.path.isfile(jar):
                    raise RuntimeError(
                        "the Netty connection factory needs %s (Debian's "
                        "libnetty-java)" % jar)
            parts.extend(NETTY_JARS)
        return ":".join(parts)

    def command_line(self) -> List[str]:
        """Return the argv that starts this server."""
        classpath = self._classpath()
        sasl_opts = []
        if self.sasl is not None:
            sasl_opts.append("-Djava.security.auth.login.config="
                             + self.jaas_path)
        return (
            [find_java()]
            + self.jvm_opts
            + sasl_opts
            + [
                "-Dlog4j.configuration=file:" + self.log4j_path,
                "-Dzookeeper.log.dir=" + self.base_dir,
                "-cp",
                classpath,
                self.main_class,
                self.config_path,
            ]
        )

    # -- life cycle --------------------------------------------------------

    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"``, the client address of this server."""
        return "%s:%d" % (self.host, self.port)

    @property
    def secure_address(self) -> str:
        """``"127.0.0.1:SECURE_PORT"``, the TLS client address; raises
        RuntimeError when the server has no ``tls``."""
        if self.secure_port is None:
            raise RuntimeError("%s has no TLS client port" % self)
        return "%s:%d" % (self.host, self.secure_port)

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        proc = self._proc
        return proc is not None and proc.poll() is None

    @property
    def pid(self) -> Optional[int]:
        """Process id of the running JVM, or None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self: _Server, wait: bool = True,
              timeout: Optional[float] = None) -> _Server:
        """Start the JVM and (by default) wait until it serves clients.

        Raises RuntimeError, including the tail of the server log, when the
        server cannot be started or does not become ready in time.
        """
        with self._lock:
            if self.running:
                raise RuntimeError("%s is already running" % self)
            self._write_files()
            argv = self.command_line()
            self._close_out_file()
            self._out_file = open(self.out_path, "ab")
            try:
                self._proc = subprocess.Popen(
                    argv,
                    cwd=self.base_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=self._out_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_preexec_for_main_thread(),
                )
            except OSError as exc:
                raise RuntimeError(
                    "cannot start ZooKeeper (%s): %s" % (" ".join(argv), exc)
                ) from exc
            with _live_lock:
                _live_servers.add(self)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: Optional[float] = None) -> str:
        """Wait until the server answers ``srvr`` with a ``Mode:`` line.

        Returns the mode ("standalone", "leader" or "follower").
        """
        timeout = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            proc = self._proc
            if proc is None:
                raise RuntimeError("%s was never started or was stopped"
                                   % self)
            if proc.poll() is not None:
                raise RuntimeError(
                    "ZooKeeper %s exited during start-up (exit code %s)\n%s"
                    % (self.address, proc.returncode, self.log_tail())
                )
            try:
                text = self.command("srvr", timeout=2.0)
                mode = _parse_mode(text)
                if mode and self._secure_port_open():
                    return mode
                last = ("secure port %s not open yet" % self.secure_port
                        if mode else text.strip() or "empty answer")
            except OSError as exc:
                last = repr(exc)
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    "ZooKeeper %s not ready after %.0f s (last srvr answer: "
                    "%s)\n%s" % (self.address, timeout, last, self.log_tail())
                )
            time.sleep(0.1)

    def _secure_port_open(self) -> bool:
        if self.secure_port is None:
            return True
        try:
            socket.create_connection((self.host, self.secure_port),
                                     timeout=2.0).close()
            return True
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM, then SIGKILL after ``timeout`` seconds.

        Data and configuration are kept; :meth:`start` brings it back.
        """
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self._forget()

    def kill(self) -> None:
        """Kill the server with SIGKILL (a crash: no clean shutdown)."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            self._forget()

    def restart(self: _Server, timeout: Optional[float] = None) -> _Server:
        """Stop the server and start it again on the same port and data."""
        self.stop()
        return self.start(timeout=timeout)

    def cleanup(self) -> None:
        """Stop the server and remove its directory if it was temporary."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def _forget(self) -> None:
        with _live_lock:
            _live_servers.discard(self)
        if self._proc is not None:
            self.returncode = self._proc.returncode
        self._proc = None
        self._close_out_file()

    def _close_out_file(self) -> None:
        if self._out_file is not None:
            self._out_file.close()
            self._out_file = None

    def __enter__(self: _Server) -> _Server:
        if not self.running:
            self.start()
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException],
                 traceback: Optional[TracebackType]) -> None:
        self.cleanup()

    # -- inspection --------------------------------------------------------

    def command(self, word: str, timeout: float = 5.0) -> str:
        """Send a four-letter word (``ruok``, ``srvr``, ``cons``, ``wchc``,
        ``dump``...) over a fresh connection and return the answer."""
        return four_letter_word(self.host, self.port, word, timeout)

    def mode(self) -> Optional[str]:
        """Return "standalone", "leader" or "follower"; None when the server
        is down or not serving (e.g. a quorum member without a quorum)."""
        try:
            return _parse_mode(self.command("srvr", timeout=2.0))
        except OSError:
            return None

    def zxid(self) -> int:
        """Return the server's last processed zxid (``srvr``'s ``Zxid:``)."""
        text = self.command("srvr")
        zxid = _parse_zxid(text)
        if zxid is None:
            raise RuntimeError(
                "ZooKeeper %s gave no zxid: %r" % (self.address, text)
            )
        return zxid

    def log_tail(self, lines: int = 60) -> str:
        """Return the last lines of the server log and of the JVM output."""
        parts = []
        for path in (self.log_path, self.out_path):
            try:
                with open(path, "rb") as f:
                    f.seek(0, os.SEEK_END)
                    size = f.tell()
                    f.seek(max(0, size - 64 * 1024))
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            tail = "\n".join(text.splitlines()[-lines:])
            if tail.strip():
                parts.append("--- last lines of %s ---\n%s" % (path, tail))
        return "\n".join(parts) or "(no server output in %s)" % self.base_dir

    def __repr__(self) -> str:
        return "<%s %s %s>" % (
            type(self).__name__,
            self.address,
            "running" if self.running else "stopped",
        )


class EnsembleMember(ZooKeeperServer):
    """A quorum member of a :class:`ZooKeeperEnsemble` (QuorumPeerMain)."""

    main_class = QUORUM_MAIN

    def __init__(self, data_dir: str, myid: int, peer_port: int,
                 election_port: int, **kwargs: Any) -> None:
        super().__init__(data_dir, **kwargs)
        self.myid = myid
        self.peer_port = peer_port
        self.election_port = election_port
        self.server_lines: Dict[str, object] = {}

    def _config(self) -> Dict[str, object]:
        config = super()._config()
        config.setdefault("initLimit", 20)
        config.setdefault("syncLimit", 10)
        config.setdefault("cnxTimeout", 2000)
        config.update(self.server_lines)
        config.update(self.extra_config)
        return config

    def _write_files(self) -> None:
        super()._write_files()
        with open(os.path.join(self.data_dir, "myid"), "w") as f:
            f.write("%d\n" % self.myid)

    def __repr__(self) -> str:
        return "<EnsembleMember %d %s %s>" % (
            self.myid,
            self.address,
            "running" if self.running else "stopped",
        )


class ZooKeeperEnsemble:
    """A ZooKeeper ensemble of ``size`` QuorumPeerMain processes on loopback.

    Each member has its own directory under ``base_dir`` (a temporary one
    when None) and its own client, peer and election ports.  Members are
    :class:`EnsembleMember` objects in :attr:`servers` and can be stopped,
    killed and restarted one by one.  ``server_kwargs`` go to every member:
    ``tls=ServerTls(...)`` gives each its own secure client port
    (:attr:`secure_hosts`; the quorum itself stays plain), ``sasl=`` SASL.
    """

    def __init__(
        self,
        size: int = 3,
        tick_time: int = 500,
        base_dir: Optional[str] = None,
        extra_config: Optional[Mapping[str, object]] = None,
        start_timeout: float = 60.0,
        **server_kwargs: Any
    ) -> None:
        if "secure_client_port" in server_kwargs:
            raise ValueError("each ensemble member picks its own "
                             "secure_client_port")
        self._owns_dir = base_dir is None
        if base_dir is None:
            base_dir = tempfile.mkdtemp(prefix="fastzk-ensemble-")
        self.base_dir = os.path.abspath(str(base_dir))
        self.start_timeout = start_timeout
        self.servers: List[EnsembleMember] = []
        for myid in range(1, size + 1):
            self.servers.append(
                EnsembleMember(
                    os.path.join(self.base_dir, "server%d" % myid),
                    myid,
                    free_port(),
                    free_port(),
                    tick_time=tick_time,
                    extra_config=extra_config,
                    start_timeout=start_timeout,
                    **server_kwargs
                )
            )
        lines = {
            "server.%d" % m.myid: "%s:%d:%d" % (m.host, m.peer_port,
                                                m.election_port)
            for m in self.servers
        }
        for member in self.servers:
            member.server_lines = dict(lines)

    @property
    def hosts(self) -> str:
        """Connection string of every member: ``"127.0.0.1:p1,..."``."""
        return ",".join(m.address for m in self.servers)

    @property
    def secure_hosts(self) -> str:
        """TLS connection string of every member (members need ``tls``)."""
        return ",".join(m.secure_address for m in self.servers)

    @property
    def running(self) -> bool:
        """True when every member process is alive."""
        return all(m.running for m in self.servers)

    def start(self: _Ensemble, wait: bool = True,
              timeout: Optional[float] = None) -> _Ensemble:
        """Start every member that is not running, then wait for a quorum."""
        for member in self.servers:
            if not member.running:
                member.start(wait=False)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self,
                   timeout: Optional[float] = None) -> Dict[int, Optional[str]]:
        """Wait until every running member serves and exactly one of them is
        the leader.  Members deliberately stopped or killed are ignored; a
        member that died by itself makes this raise with its log."""
        timeout = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            modes: Dict[int, Optional[str]] = {}
            for member in self.servers:
                proc = member._proc
                if proc is None:
                    continue  # stopped on purpose
                if proc.poll() is not None:
                    raise RuntimeError(
                        "ensemble member %d (%s) exited (code %s)\n%s"
                        % (member.myid, member.address, proc.returncode,
                           member.log_tail())
                    )
                modes[member.myid] = member.mode()
            values = list(modes.values())
            if (modes and None not in values
                    and values.count("leader") == 1):
                return modes
            if time.monotonic() >= deadline:
                tails = "\n".join(
                    "member %d: %s\n%s" % (m.myid, modes.get(m.myid),
                                           m.log_tail(25))
                    for m in self.servers
                )
                raise RuntimeError(
                    "ZooKeeper ensemble not ready after %.0f s, modes %r\n%s"
                    % (timeout, modes, tails)
                )
            time.sleep(0.2)

    def leader(self, timeout: Optional[float] = None) -> EnsembleMember:
        """Return the member whose mode is "leader", waiting up to
        ``timeout`` seconds (default: the start timeout) for an election."""
        timeout = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            for member in self.servers:
                if member.running and member.mode() == "leader":
                    return member
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    "no leader in the ensemble after %.0f s: %r"
                    % (timeout, [(m.myid, m.mode()) for m in self.servers])
                )
            time.sleep(0.2)

    def followers(self) -> List[EnsembleMember]:
        """Return the running members whose mode is "follower"."""
        return [m for m in self.servers
                if m.running and m.mode() == "follower"]

    def zxid(self) -> int:
        """Return the leader's last zxid."""
        return self.leader().zxid()

    def stop(self) -> None:
        """Stop every member (data is kept)."""
        for member in self.servers:
            proc = member._proc
            if proc is not None and proc.poll() is None:
                proc.terminate()  # all at once; stop() below waits for each
        for member in self.servers:
            member.stop()

    def cleanup(self) -> None:
        """Stop every member and remove the directory if it was temporary."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self: _Ensemble) -> _Ensemble:
        self.start()
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException],
                 traceback: Optional[TracebackType]) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return "<ZooKeeperEnsemble %s>" % self.hosts


# ---------------------------------------------------------------------------
# Session expiry
# ---------------------------------------------------------------------------

def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        if not data:
            raise ConnectionError("connection closed by the server")
        buf.extend(data)
    return bytes(buf)


def _recv_frame(sock: socket.socket) -> bytes:
    (length,) = struct.unpack(">i", _recv_exact(sock, 4))
    return _recv_exact(sock, length)


def _split_hosts(hosts: str) -> List[Tuple[str, int]]:
    hosts = hosts.split("/", 1)[0]
    result = []
    for item in hosts.split(","):
        item = item.strip()
        if not item:
            continue
        host, _, port = item.rpartition(":")
        if not host:
            host, port = port, "2181"
        result.append((host.strip("[]"), int(port)))
    return result


def expire_session(hosts: str, session_id: int, passwd: Union[bytes, str],
                   timeout_ms: int = 10000, timeout: float = 10.0) -> bool:
    """Make the server end a client's session, as a real expiry would.

    Opens a second raw connection with the same session id and password and
    sends closeSession on it; the server then closes the session and every
    connection of it, so the owner sees SESSION_EXPIRED (kazoo: LOST) when it
    reconnects.  ``hosts`` is a connection string (a chroot is ignored).
    ``session_id``/``passwd`` are what kazoo's ``client.client_id`` gives.
    Returns True if the session was closed, False if it had already expired.
    """
    if isinstance(passwd, str):
        passwd = passwd.encode("latin-1")
    errors = []
    for host, port in _split_hosts(hosts):
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            errors.append("%s:%d: %r" % (host, port, exc))
            continue
        try:
            sock.settimeout(timeout)
            body = struct.pack(">iqiqi", 0, 0, timeout_ms, session_id,
                               len(passwd)) + passwd + b"\x00"
            sock.sendall(struct.pack(">i", len(body)) + body)
            reply = _recv_frame(sock)
            _, negotiated, got_session = struct.unpack_from(">iiq", reply)
            if negotiated <= 0:
                return False  # already expired
            if got_session != session_id:
                raise RuntimeError(
                    "server answered with session 0x%x instead of 0x%x"
                    % (got_session, session_id)
                )
            request = struct.pack(">ii", 1, -11)  # xid 1, closeSession
            sock.sendall(struct.pack(">i", len(request)) + request)
            # The server answers closeSession, then closes the connection.
            try:
                while True:
                    frame = _recv_frame(sock)
                    xid, _zxid, err = struct.unpack_from(">iqi", frame)
                    if xid == 1:
                        if err != 0:
                            raise RuntimeError(
                                "closeSession of 0x%x failed: error %d"
                                % (session_id, err)
                            )
                        break
            except (ConnectionError, socket.timeout):
                pass
            return True
        except (OSError, struct.error) as exc:
            errors.append("%s:%d: %r" % (host, port, exc))
        finally:
            sock.close()
    raise RuntimeError(
        "could not expire session 0x%x via %s: %s"
        % (session_id, hosts, "; ".join(errors))
    )
