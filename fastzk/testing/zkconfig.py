"""The files and command line of one test ZooKeeper server.

:class:`ServerConfig` is what a server is before it runs: its directory,
ports, ``zoo.cfg``, ``log4j.properties``, JAAS file and the ``java``
command that starts it.  :class:`~fastzk.testing.zkprocess.ZooKeeperServer`
adds the process.
"""

import os
import subprocess
import tempfile
import threading
from typing import IO, Dict, List, Mapping, Optional, Sequence

from fastzk.testing.zkinstall import (
    DEFAULT_JVM_OPTS,
    NETTY_FACTORY,
    NETTY_JARS,
    STANDALONE_MAIN,
    find_java,
    find_zookeeper,
    free_port,
)
from fastzk.testing.zksecurity import ServerAuth, ServerTls

__all__ = ["DEFAULT_START_TIMEOUT", "ServerConfig"]

DEFAULT_START_TIMEOUT = 30.0

_LOG4J_TEMPLATE = """\
log4j.rootLogger=INFO, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File={log_file}
log4j.appender.FILE.Append=true
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{{ISO8601}} %-5p [%t:%C{{1}}@%L] - %m%n
"""



class ServerConfig:
    """The configuration of one ZooKeeper server, written to its
    directory by :meth:`_write_files`; see
    :class:`~fastzk.testing.zkprocess.ZooKeeperServer` for the parameters.
    The process state lives here too, so that every kind of server shares
    this one constructor.
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
        sasl: Optional[ServerAuth] = None,
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
        sasl_opts: List[str] = []
        if self.sasl is not None:
            sasl_opts.append("-Djava.security.auth.login.config="
                             + self.jaas_path)
            sasl_opts.extend(self.sasl.jvm_options())
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

    # -- addresses ---------------------------------------------------------

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
