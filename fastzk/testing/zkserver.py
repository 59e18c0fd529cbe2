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
authenticate clients with SASL: DIGEST-MD5 (``sasl=``, a
:class:`ServerSasl`) or Kerberos (``sasl=``, a :class:`ServerKerberos`,
with a realm from :mod:`fastzk.testing.kdc`)::

    files = make_tls_files("/tmp/tls")
    server = ZooKeeperServer(tls=ServerTls(files.server_pem, files.ca),
                             sasl=ServerSasl({"alice": "secret"}))
    server.start()
    server.secure_address     # "127.0.0.1:SECURE_PORT"; address stays plain

The pieces live in modules of their own: :mod:`fastzk.testing.zkinstall`
(the installation and free ports), :mod:`fastzk.testing.zksecurity` (TLS
and SASL settings), :mod:`fastzk.testing.zkconfig` and
:mod:`fastzk.testing.zkprocess` (one server), :mod:`fastzk.testing.zkensemble`
(a quorum) and :mod:`fastzk.testing.zksession` (session expiry); every
public name is importable from here.
"""

from fastzk.fourletter import four_letter_word
from fastzk.testing.zkconfig import DEFAULT_START_TIMEOUT, ServerConfig
from fastzk.testing.zkensemble import EnsembleMember, ZooKeeperEnsemble
from fastzk.testing.zkinstall import (
    DEFAULT_CONF_DIR,
    DEFAULT_JAR,
    DEFAULT_JVM_OPTS,
    LOG_BINDING_JARS,
    NETTY_FACTORY,
    NETTY_JARS,
    NOT_INSTALLED,
    QUORUM_MAIN,
    SASL_PROVIDER,
    STANDALONE_MAIN,
    find_java,
    find_zookeeper,
    free_port,
    zookeeper_version,
)
from fastzk.testing.zkprocess import ZooKeeperServer
from fastzk.testing.zksecurity import (
    CLIENT_AUTH_MODES,
    TLS13_CIPHER_SUITES,
    TLS_PROTOCOLS,
    ServerAuth,
    ServerKerberos,
    ServerSasl,
    ServerTls,
)
from fastzk.testing.zksession import expire_session

__all__ = [
    "CLIENT_AUTH_MODES",
    "DEFAULT_CONF_DIR",
    "DEFAULT_JAR",
    "DEFAULT_JVM_OPTS",
    "DEFAULT_START_TIMEOUT",
    "LOG_BINDING_JARS",
    "NETTY_FACTORY",
    "NETTY_JARS",
    "NOT_INSTALLED",
    "QUORUM_MAIN",
    "SASL_PROVIDER",
    "STANDALONE_MAIN",
    "TLS13_CIPHER_SUITES",
    "TLS_PROTOCOLS",
    "EnsembleMember",
    "ServerAuth",
    "ServerConfig",
    "ServerKerberos",
    "ServerSasl",
    "ServerTls",
    "ZooKeeperEnsemble",
    "ZooKeeperServer",
    "expire_session",
    "find_java",
    "find_zookeeper",
    "four_letter_word",
    "free_port",
    "zookeeper_version",
]
