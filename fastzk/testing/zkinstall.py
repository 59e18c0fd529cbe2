"""Where the installed ZooKeeper is, and free loopback ports for servers.

The servers are Debian's ZooKeeper (the ``zookeeper`` package:
``/usr/share/java/zookeeper.jar`` run by Java 17);
:func:`find_zookeeper` raises a clear error when it is missing.
"""

import os
import random
import re
import shutil
import socket
import threading
import time
import zipfile
from typing import Optional, Tuple

__all__ = [
    "DEFAULT_JAR",
    "DEFAULT_JVM_OPTS",
    "NETTY_FACTORY",
    "SASL_PROVIDER",
    "find_java",
    "find_zookeeper",
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
