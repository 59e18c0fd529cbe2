"""A ZooKeeper ensemble of quorum members on loopback, for tests."""

import os
import shutil
import tempfile
import time
from types import TracebackType
from typing import Any, Dict, List, Mapping, Optional, Type, TypeVar

from fastzk.testing.zkinstall import QUORUM_MAIN, free_port
from fastzk.testing.zkprocess import ZooKeeperServer

__all__ = ["EnsembleMember", "ZooKeeperEnsemble"]

_Ensemble = TypeVar("_Ensemble", bound="ZooKeeperEnsemble")


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
