"""The ZooKeeper server a benchmark run measures against: one given with
``--hosts`` or one started here, checked, and warmed up before anything
is measured."""

import os
import re
import time


def _srvr(hosts, timeout=5.0):
    from fastzk.fourletter import four_letter_word

    item = hosts.split("/", 1)[0].split(",")[0].strip()
    host, _, port = item.rpartition(":")
    if not host:
        host, port = port, "2181"
    return four_letter_word(host.strip("[]"), int(port), "srvr", timeout)


def server_version(hosts):
    """The version a server reports in ``srvr``, or None."""
    try:
        text = _srvr(hosts)
    except OSError:
        return None
    match = re.search(r"^Zookeeper version:\s*([0-9][^,\s-]*)", text, re.M)
    return match.group(1) if match else None


def check_serves(hosts, timeout=15.0, options=None):
    """Raise RuntimeError (one line) unless a client session can be opened
    on ``hosts`` within ``timeout`` seconds, with the client ``options``
    (TLS, SASL) of :func:`fastzk.cli.common.client_options`."""
    from fastzk.client import KazooClient

    try:
        client = KazooClient(hosts=hosts, timeout=10.0, **(options or {}))
    except Exception as exc:
        raise RuntimeError("invalid --hosts %r: %s" % (hosts, exc)) from exc
    try:
        client.start(timeout=timeout)
    except Exception as exc:
        raise RuntimeError("cannot connect to ZooKeeper at %s within %g s "
                           "(%s)" % (hosts, timeout, type(exc).__name__)) \
            from exc
    finally:
        try:
            client.stop()
        finally:
            client.close()


class _Server(object):
    """The server the run uses: one started here, or ``--hosts``."""

    def __init__(self, hosts=None, options=None):
        self.owned = None
        self.hosts = hosts
        self.options = options or {}
        self.version = None

    def start(self, log):
        if self.hosts:
            check_serves(self.hosts, options=self.options)
            self.version = server_version(self.hosts)
            if self.version is None:
                log("note: %s does not answer the srvr four-letter word; "
                    "server transaction counts will be n/a" % self.hosts)
            return
        from fastzk.testing.zkserver import ZooKeeperServer, zookeeper_version

        self.owned = ZooKeeperServer()
        try:
            self.owned.start(timeout=90)
        except Exception:
            self.owned.cleanup()
            self.owned = None
            raise
        self.hosts = self.owned.address
        self.version = zookeeper_version() or server_version(self.hosts)

    def stop(self):
        if self.owned is not None:
            self.owned.cleanup()
            self.owned = None


# ---------------------------------------------------------------------------
# Warming the server
# ---------------------------------------------------------------------------

#: Requests of each kind the warm-up sends: past the JVM's tiered
#: compilation thresholds (C2 compiles a method after about 10,000
#: invocations), so that neither client is measured against a server


# ---------------------------------------------------------------------------
# Warming the server
# ---------------------------------------------------------------------------

WARMUP_REQUESTS = 20000

#: The warm-up of a ``--quick`` run, a smoke test whose figures are not
#: meant to be compared.
WARMUP_REQUESTS_QUICK = 5000


def warm_up(hosts, requests=WARMUP_REQUESTS, log=None, options=None):
    """Exercise the server's request path before anything is measured.

    Creates, lists, reads, checks, writes and deletes ``requests`` nodes
    (each kind ``requests`` times, pipelined, through one fastzk client) under ``/fastzk-warmup``, which is gone afterwards.
    Client-neutral: both clients are then measured against the same
    compiled server code.  ``options``: the client's TLS and SASL
    arguments.  Returns the seconds it took.
    """
    from fastzk.client import KazooClient

    started = time.monotonic()
    client = KazooClient(hosts=hosts, timeout=30.0, **(options or {}))
    client.start(timeout=60)
    try:
        root = "/fastzk-warmup"
        small = root + "/small"  # a short children list, as in the suite
        client.ensure_path(root)
        client.create(small)
        for i in range(10):
            client.create("%s/child-%02d" % (small, i), b"x" * 64)
        batch = 1000
        done = 0
        while done < requests:
            names = [r.get() for r in [
                client.create_async(root + "/n-", b"x" * 64, ephemeral=True,
                                    sequence=True) for _ in range(batch)]]
            # Pipelined: the server's code path is the same as for
            # synchronous calls, only faster to drive.
            for call, path in ((client.get_children_async, small),
                               (client.get_async, names[0]),
                               (client.exists_async, names[-1])):
                for r in [call(path) for _ in range(batch)]:
                    r.get()
            for r in [client.set_async(name, b"y" * 64) for name in names]:
                r.get()
            for r in [client.delete_async(name) for name in names]:
                r.get()
            done += batch
        client.delete(root, recursive=True)
    finally:
        client.stop()
        client.close()
    took = time.monotonic() - started
    if log is not None:
        log("server warmed up: %d requests of each kind in %.1fs"
            % (requests, took))
    return took


# ---------------------------------------------------------------------------
# A local server
# ---------------------------------------------------------------------------

#: How to get a ZooKeeper when none is installed; ends the one-line error.
GET_ZOOKEEPER = ("install Debian's zookeeper package (apt-get install "
                 "zookeeper) or pass --hosts HOST:PORT")


def local_zookeeper_problem():
    """Why no local ZooKeeper can be started (one line ending with how to
    get one), or None when one is installed.  Honours
    ``FASTZK_ZOOKEEPER_JAR`` and ``JAVA_HOME`` as
    :mod:`fastzk.testing.zkserver` does."""
    from fastzk.testing import zkserver

    jar = os.environ.get("FASTZK_ZOOKEEPER_JAR", zkserver.DEFAULT_JAR)
    if not os.path.isfile(jar):
        return "no ZooKeeper found (no %s): %s" % (jar, GET_ZOOKEEPER)
    try:
        zkserver.find_java()
    except RuntimeError:
        return ("no Java found to run ZooKeeper (no `java` on PATH or in "
                "JAVA_HOME): %s" % GET_ZOOKEEPER)
    return None
