"""A throwaway MIT Kerberos realm for tests: a KDC, principals, keytabs.

Nothing here depends on pytest.  The realm lives in one temporary
directory: ``kdc.conf`` (the KDC's profile), ``krb5.conf`` (the clients'
and the ZooKeeper server's), the database made by ``kdb5_util``, a keytab
per principal made by ``kadmin.local ktadd``, and the KDC's log.  The KDC
is Debian's ``krb5kdc`` (packages ``krb5-kdc``, ``krb5-admin-server`` and
``krb5-user``), run in the foreground on a free loopback port, UDP and
TCP.  :func:`find_kerberos` raises a clear error when it is missing, and
a KDC that does not come up raises with the tail of its log: a test that
needs Kerberos fails rather than skips.

Typical use::

    with KerberosRealm() as realm:
        realm.add_principal("alice")          # alice@FASTZK.TEST
        keytab = realm.keytab("alice")
        server_keytab = realm.add_service("zookeeper", "localhost")
        env = realm.client_environment("alice")  # KRB5_CONFIG and friends

A client picks its credentials up from ``env``: MIT Kerberos reads the
realm from ``KRB5_CONFIG`` and, with ``KRB5_CLIENT_KTNAME``, gets a ticket
from the client keytab by itself when the credential cache
(``KRB5CCNAME``) has none.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from types import TracebackType
from typing import Dict, List, Optional, Type, TypeVar

from fastzk.testing.zkinstall import free_port

__all__ = [
    "DEFAULT_REALM",
    "KERBEROS_NOT_INSTALLED",
    "KerberosRealm",
    "find_kerberos",
]

#: The realm name a :class:`KerberosRealm` uses unless told otherwise.
DEFAULT_REALM = "FASTZK.TEST"
#: What a missing MIT Kerberos installation reports.
KERBEROS_NOT_INSTALLED = (
    "MIT Kerberos KDC not installed (%s not found): run `make kerberos` or "
    "apt-get install -y krb5-kdc krb5-admin-server krb5-user"
)
_TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit", "klist")
_SEARCH_PATH = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
_START_TIMEOUT = 15.0
# The two AES enctypes of RFC 3962: what both MIT Kerberos and Java 17
# accept without extra configuration.
_ENCTYPES = "aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96"

_Realm = TypeVar("_Realm", bound="KerberosRealm")


def find_kerberos() -> Dict[str, str]:
    """Return the paths of ``krb5kdc``, ``kdb5_util``, ``kadmin.local``,
    ``kinit`` and ``klist``.

    :raises RuntimeError: naming the first one missing and the packages
        that provide them.
    """
    found: Dict[str, str] = {}
    path = os.pathsep.join([os.environ.get("PATH", "")] + list(_SEARCH_PATH))
    for tool in _TOOLS:
        where = shutil.which(tool, path=path)
        if where is None:
            raise RuntimeError(KERBEROS_NOT_INSTALLED % tool)
        found[tool] = where
    return found


def _free_port() -> int:
    """A loopback port free for both TCP and UDP now (the KDC serves both
    on one port), outside the kernel's ephemeral range when possible as
    :func:`~fastzk.testing.zkinstall.free_port` picks them."""
    for _ in range(200):
        port = free_port()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            udp.close()
    raise RuntimeError("could not find a loopback port free for TCP and UDP")


def _kdc_conf(realm: str, directory: str, port: int, log: str) -> str:
    """The KDC's profile: the database in ``directory``, UDP and TCP on
    ``port`` of the loopback address only."""
    return (
        "[kdcdefaults]\n"
        " kdc_listen = 127.0.0.1:{port}\n"
        " kdc_tcp_listen = 127.0.0.1:{port}\n"
        "[realms]\n"
        " {realm} = {{\n"
        "  database_name = {d}/principal\n"
        "  key_stash_file = {d}/stash\n"
        "  acl_file = {d}/kadm5.acl\n"
        "  kdc_listen = 127.0.0.1:{port}\n"
        "  kdc_tcp_listen = 127.0.0.1:{port}\n"
        "  max_life = 10h\n"
        "  max_renewable_life = 1d\n"
        "  supported_enctypes = {supported}\n"
        " }}\n"
        "[logging]\n"
        " kdc = FILE:{log}\n"
    ).format(port=port, realm=realm, d=directory, log=log,
             supported=" ".join(e + ":normal" for e in _ENCTYPES.split()))


def _krb5_conf(realm: str, port: int) -> str:
    """The clients' (and the Java server's) ``krb5.conf`` of the realm."""
    # Names are taken as written: no DNS look-up of realms or KDCs and no
    # canonicalization of host names, so zookeeper/localhost is the
    # principal whatever the resolver says about localhost.
    return (
        "[libdefaults]\n"
        " default_realm = {realm}\n"
        " dns_lookup_realm = false\n"
        " dns_lookup_kdc = false\n"
        " dns_canonicalize_hostname = false\n"
        " rdns = false\n"
        " ignore_acceptor_hostname = false\n"
        " default_tkt_enctypes = {enctypes}\n"
        " default_tgs_enctypes = {enctypes}\n"
        " permitted_enctypes = {enctypes}\n"
        " ticket_lifetime = 10h\n"
        " forwardable = false\n"
        " udp_preference_limit = 1\n"
        "[realms]\n"
        " {realm} = {{\n"
        "  kdc = 127.0.0.1:{port}\n"
        " }}\n"
        "[domain_realm]\n"
        " localhost = {realm}\n"
        " .localhost = {realm}\n"
        " 127.0.0.1 = {realm}\n"
    ).format(port=port, realm=realm, enctypes=_ENCTYPES)


class KerberosRealm:
    """A Kerberos realm with its own KDC, in a temporary directory.

    :meth:`start` writes the configuration, creates the database and
    starts ``krb5kdc``; :meth:`add_principal` and :meth:`add_service` add
    principals, each with a keytab; :meth:`stop` ends the KDC and
    :meth:`cleanup` also removes the directory.  Usable as a context
    manager (start on entry, cleanup on exit).

    :param realm: the realm name (upper case by convention).
    :param base_dir: the directory to use; a new temporary one when None,
        removed by :meth:`cleanup`.
    :param start_timeout: seconds to wait for the KDC to listen.

    .. attribute:: krb5_conf

        The path of the clients' ``krb5.conf`` (for ``KRB5_CONFIG`` and
        Java's ``java.security.krb5.conf``).

    .. attribute:: port

        The KDC's loopback port (UDP and TCP), once started.
    """

    def __init__(self, realm: str = DEFAULT_REALM, base_dir: Optional[str] = None,
                 start_timeout: float = _START_TIMEOUT) -> None:
        if not realm or any(c.isspace() or c in "@/{}" for c in realm):
            raise ValueError("not a realm name: %r" % (realm,))
        self.realm = realm
        self._owns_dir = base_dir is None
        self.base_dir = os.path.abspath(
            base_dir if base_dir is not None else tempfile.mkdtemp(prefix="fastzk-kdc-"))
        self.kdc_conf = os.path.join(self.base_dir, "kdc.conf")
        self.krb5_conf = os.path.join(self.base_dir, "krb5.conf")
        self.log_path = os.path.join(self.base_dir, "kdc.log")
        self.out_path = os.path.join(self.base_dir, "kdc.out")
        self.start_timeout = start_timeout
        self.port: Optional[int] = None
        self._tools: Dict[str, str] = {}
        self._proc: Optional["subprocess.Popen[bytes]"] = None
        self._keytabs: Dict[str, str] = {}

    # -- files ---------------------------------------------------------------

    def _path(self, name: str) -> str:
        return os.path.join(self.base_dir, name)

    def _write_config(self, port: int) -> None:
        with open(self.kdc_conf, "w") as f:
            f.write(_kdc_conf(self.realm, self.base_dir, port, self.log_path))
        with open(self.krb5_conf, "w") as f:
            f.write(_krb5_conf(self.realm, port))
        with open(self._path("kadm5.acl"), "w") as f:
            f.write("")

    def environment(self) -> Dict[str, str]:
        """The environment variables that point the Kerberos tools and
        library at this realm (``KRB5_CONFIG``, ``KRB5_KDC_PROFILE``) and
        keep them off the system's credential cache and keytab."""
        return {
            "KRB5_CONFIG": self.krb5_conf,
            "KRB5_KDC_PROFILE": self.kdc_conf,
            "KRB5CCNAME": "FILE:" + self._path("ccache-default"),
            "KRB5_KTNAME": "FILE:" + self._path("default.keytab"),
        }

    def client_environment(self, principal: Optional[str] = None,
                           ccache: Optional[str] = None) -> Dict[str, str]:
        """The environment of a client of this realm.

        :param principal: a principal added here whose keytab becomes the
            client keytab (``KRB5_CLIENT_KTNAME``): MIT Kerberos then gets
            its initial ticket from it; None for a client without
            credentials.
        :param ccache: the credential cache file (``KRB5CCNAME``); by
            default a new empty one per principal in the realm directory.
        """
        env = self.environment()
        name = self._qualify(principal).replace("/", "_") if principal else "nobody"
        env["KRB5CCNAME"] = "FILE:" + (ccache or self._path("ccache-" + name))
        if principal is not None:
            env["KRB5_CLIENT_KTNAME"] = "FILE:" + self.keytab(principal)
        else:
            env["KRB5_CLIENT_KTNAME"] = "FILE:" + self._path("no-such.keytab")
        return env

    # -- running the tools -----------------------------------------------------

    def _run(self, tool: str, *args: str, what: str) -> str:
        env = dict(os.environ)
        env.update(self.environment())
        try:
            done = subprocess.run([self._tools[tool]] + list(args), env=env,
                                  stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=60)
        except subprocess.TimeoutExpired:
            raise RuntimeError("Kerberos: %s (%s) did not finish in 60 s" % (what, tool)) from None
        out = (done.stdout + done.stderr).decode("utf-8", "replace")
        if done.returncode != 0:
            raise RuntimeError("Kerberos: %s failed (%s exited with %d): %s"
                               % (what, tool, done.returncode, out.strip()))
        return out

    def _kadmin(self, query: str, what: str) -> str:
        return self._run("kadmin.local", "-r", self.realm, "-q", query, what=what)

    def _qualify(self, principal: str) -> str:
        return principal if "@" in principal else "%s@%s" % (principal, self.realm)

    def add_principal(self, principal: str) -> str:
        """Add ``principal`` (``name`` or ``name/instance``, the realm
        appended unless given) with a random key, and write its keytab.

        :returns: the path of its keytab (see :meth:`keytab`).
        """
        self._require_started()
        full = self._qualify(principal)
        if any(c.isspace() or c in "\"'" for c in full):
            raise ValueError("not a principal name: %r" % (principal,))
        self._kadmin("addprinc -randkey %s" % full, "adding principal %s" % full)
        keytab = self._path(full.split("@")[0].replace("/", "_") + ".keytab")
        self._kadmin("ktadd -k %s -norandkey %s" % (keytab, full),
                     "writing the keytab of %s" % full)
        self._keytabs[full] = keytab
        return keytab

    def add_service(self, service: str, host: str = "localhost") -> str:
        """Add the service principal ``service/host@REALM``; return its
        keytab's path."""
        return self.add_principal("%s/%s" % (service, host))

    def change_key(self, principal: str) -> None:
        """Give ``principal`` a new random key in the KDC only, leaving its
        keytab with the old one: tickets issued from now on no longer
        decrypt with the keytab (what a server whose keytab went stale
        sees)."""
        self._require_started()
        full = self._qualify(principal)
        self.keytab(full)
        self._kadmin("cpw -randkey %s" % full, "changing the key of %s" % full)

    def keytab(self, principal: str) -> str:
        """The keytab of a principal added by :meth:`add_principal`."""
        full = self._qualify(principal)
        try:
            return self._keytabs[full]
        except KeyError:
            raise KeyError("no principal %s in this realm" % full) from None

    def principal(self, name: str) -> str:
        """``name`` with the realm appended (``alice`` -> ``alice@REALM``)."""
        return self._qualify(name)

    def kinit(self, principal: str, ccache: str) -> None:
        """Get a ticket for ``principal`` from its keytab into the
        credential cache file ``ccache`` (``kinit -k -t``)."""
        self._require_started()
        full = self._qualify(principal)
        self._run("kinit", "-k", "-t", self.keytab(principal), "-c", "FILE:" + ccache,
                  full, what="kinit of %s" % full)

    # -- life cycle --------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the KDC process runs."""
        return self._proc is not None and self._proc.poll() is None

    def start(self: _Realm) -> _Realm:
        """Write the configuration, create the database and start the KDC;
        return once it accepts TCP connections.

        :raises RuntimeError: when Kerberos is not installed, a tool fails,
            or the KDC exits or does not listen in time (with its log).
        """
        if self._proc is not None:
            raise RuntimeError("the KDC is already started")
        self._tools = find_kerberos()
        os.makedirs(self.base_dir, exist_ok=True)
        port = _free_port()
        self._write_config(port)
        if not os.path.exists(self._path("principal")):
            self._run("kdb5_util", "-r", self.realm, "-P", os.urandom(12).hex(),
                      "create", "-s", what="creating the realm's database")
        env = dict(os.environ)
        env.update(self.environment())
        with open(self.out_path, "ab") as out:
            self._proc = subprocess.Popen(
                [self._tools["krb5kdc"], "-n", "-r", self.realm],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        self.port = port
        try:
            self._wait_listening(port)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_listening(self, port: int) -> None:
        deadline = time.monotonic() + self.start_timeout
        proc = self._proc
        assert proc is not None
        while True:
            if proc.poll() is not None:
                raise RuntimeError("the KDC exited with %s at start:\n%s"
                                   % (proc.returncode, self.log_tail()))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the KDC did not listen on 127.0.0.1:%d within %.0f s:\n%s"
                                   % (port, self.start_timeout, self.log_tail()))
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """End the KDC (SIGTERM, then SIGKILL after ``timeout`` s)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def cleanup(self) -> None:
        """Stop the KDC and remove the directory if this object made it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def _require_started(self) -> None:
        if not self._tools:
            raise RuntimeError("start() the realm first")

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` of the KDC's log and output."""
        text: List[str] = []
        for path in (self.log_path, self.out_path):
            try:
                with open(path, "rb") as f:
                    text.extend(f.read().decode("utf-8", "replace").splitlines())
            except OSError:
                pass
        return "\n".join(text[-lines:]) or "(the KDC wrote nothing)"

    def __enter__(self: _Realm) -> _Realm:
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return "<KerberosRealm %s port=%s %s>" % (
            self.realm, self.port, "running" if self.running else "stopped")
