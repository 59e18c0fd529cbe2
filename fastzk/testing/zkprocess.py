"""A test ZooKeeper server process: start, wait, stop, kill, inspect.

Every server started here is killed when the test process exits (and,
when started from the main thread, when the test process dies).
"""

import atexit
import ctypes
import ctypes.util
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from types import TracebackType
from typing import Callable, Optional, Type, TypeVar

from fastzk.fourletter import four_letter_word
from fastzk.testing.zkconfig import ServerConfig

__all__ = ["ZooKeeperServer"]


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


class ZooKeeperServer(ServerConfig):
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

    ``tls`` (a :class:`~fastzk.testing.zksecurity.ServerTls`) adds a
    secure client port (``secure_client_port`` or a free one) beside the
    plain one, with the Netty connection factory, which then serves both;
    ``sasl`` turns on SASL authentication: DIGEST-MD5 with a
    :class:`~fastzk.testing.zksecurity.ServerSasl`, Kerberos (GSSAPI) with
    a :class:`~fastzk.testing.zksecurity.ServerKerberos`.
    """

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

    def __repr__(self) -> str:
        return "<%s %s %s>" % (
            type(self).__name__,
            self.address,
            "running" if self.running else "stopped",
        )

