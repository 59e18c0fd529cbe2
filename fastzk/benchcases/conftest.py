"""pytest-benchmark suite: kazoo 2.11 and fastzk side by side.

Run everything with ``fastzk bench`` (or ``make bench`` in a checkout),
which starts one ZooKeeper, runs this suite, then the fleet benchmark, and
prints one table of fastzk/kazoo ratios.  Run the suite alone with::

    python -m pytest fastzk/benchcases    # starts its own ZooKeeper
    export FASTZK_BENCH_HOSTS=127.0.0.1:2181
    python -m pytest fastzk/benchcases -k lock

Files are ``bench_*.py`` (collected by the hook below, so ``make test``
never runs them).  Speed is never asserted: every case is parametrised
over ``impl`` and the runner reports ratios.
"""

import os
import time

import pytest

from fastzk.benchcases import _benchlib as lib


def pytest_collect_file(file_path, parent):
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        # (a file named on the command line is collected by pytest itself)
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "impl_case(name): the case a benchmark measures")


def pytest_report_header(config):
    import fastzk

    return ["fastzk compiled core: %s; quick run: %s" % (
        "active" if fastzk.EXTENSIONS else "NOT active (pure Python)",
        "yes" if lib.quick() else "no")]


# -- progress: one line per finished benchmark (for the runner) ---------------

_progress = {"total": 0, "done": 0, "start": None}


def pytest_collection_finish(session):
    _progress["total"] = len(session.items)  # after -k deselection
    _progress["start"] = time.monotonic()


def pytest_runtest_logreport(report):
    if not os.environ.get("FASTZK_BENCH_PROGRESS"):
        return
    if report.when == "call" or (report.when == "setup" and report.outcome
                                 != "passed"):
        _progress["done"] += 1
        elapsed = time.monotonic() - (_progress["start"] or time.monotonic())
        name = report.nodeid.split("/")[-1]
        line = "  [%2d/%d %4.0fs] %-58s %s %.1fs\n" % (
            _progress["done"], _progress["total"], elapsed, name,
            report.outcome.upper(), report.duration)
        os.write(2, line.encode())
        if report.outcome == "failed":
            text = str(report.longrepr)
            os.write(2, ("\n".join(text.splitlines()[-25:]) + "\n").encode())


# -- the server ---------------------------------------------------------------

class Server(object):
    """The ZooKeeper the suite talks to: ``hosts`` and ``zxid()``."""

    def __init__(self, hosts, owned=None):
        self.hosts = hosts
        self.owned = owned

    def zxid(self):
        return lib.server_zxid(self.hosts)


@pytest.fixture(scope="session")
def zk(tmp_path_factory):
    """One ZooKeeper for the whole suite: FASTZK_BENCH_HOSTS if set (the
    runner's server, or --hosts), else one started here.  Fails loudly when
    no server can be had: a benchmark without a server measures nothing."""
    hosts = os.environ.get("FASTZK_BENCH_HOSTS", "").strip()
    owned = None
    if not hosts:
        from fastzk.testing.zkserver import ZooKeeperServer

        owned = ZooKeeperServer(tmp_path_factory.mktemp("zk-bench"))
        try:
            owned.start(timeout=60)
        except Exception as exc:
            owned.stop()
            pytest.fail("could not start ZooKeeper for the benchmarks: %s"
                        % exc, pytrace=False)
        hosts = owned.address
    server = Server(hosts, owned)
    try:
        probe = lib.make_client("kazoo", hosts)
        lib.close_client(probe)
    except Exception as exc:
        if owned is not None:
            owned.stop()
        pytest.fail("ZooKeeper at %s does not serve clients: %r"
                    % (hosts, exc), pytrace=False)
    yield server
    if owned is not None:
        owned.cleanup()


class TlsServer(object):
    """The TLS server of the TLS cases: ``secure_hosts`` (its TLS port),
    ``plain_hosts`` (its plaintext port, for the plaintext clients
    alternated with the TLS ones) and ``client_kwargs`` (what a client
    needs to connect over TLS, with a client certificate)."""

    def __init__(self, server, files):
        self.server = server
        self.secure_hosts = server.secure_address
        self.plain_hosts = server.address
        self.client_kwargs = {
            "use_ssl": True, "ca": files.ca, "certfile": files.client_cert,
            "keyfile": files.client_key, "verify_certs": True}


@pytest.fixture(scope="session")
def tls_zk(tmp_path_factory):
    """A ZooKeeper serving TLS (client certificates required) beside its
    plaintext port, started here; the TLS cases are skipped when the suite
    measures a server it was given (``_benchlib.tls_skip_reason``)."""
    why = lib.tls_skip_reason()
    if why:
        pytest.skip(why)
    from fastzk.testing.certs import make_tls_files
    from fastzk.testing.zkserver import ServerTls, ZooKeeperServer

    files = make_tls_files(str(tmp_path_factory.mktemp("tls-files")))
    owned = ZooKeeperServer(
        str(tmp_path_factory.mktemp("zk-tls-bench")),
        tls=ServerTls(files.server_pem, files.ca, client_auth="need"))
    try:
        owned.start(timeout=60)
    except Exception as exc:
        owned.cleanup()
        pytest.fail("could not start a TLS ZooKeeper for the benchmarks: "
                    "%s" % exc, pytrace=False)
    from fastzk.bench import WARMUP_REQUESTS, WARMUP_REQUESTS_QUICK, warm_up

    # As the runner warms its server: past the JVM's compile thresholds.
    warm_up(owned.address, lib.pick(WARMUP_REQUESTS, WARMUP_REQUESTS_QUICK))
    yield TlsServer(owned, files)
    owned.cleanup()


@pytest.fixture(scope="session")
def admin(zk):
    """A fastzk client for setting up and tearing down trees."""
    client = lib.make_client("fastzk", zk.hosts)
    yield client
    lib.close_client(client)


@pytest.fixture
def clients(zk):
    """``clients(impl, **kwargs)`` starts a client of ``impl``; all are
    stopped after the test."""
    made = []

    def make(impl, hosts=None, **kwargs):
        client = lib.make_client(impl, hosts or zk.hosts, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        try:
            lib.close_client(client)
        except Exception:
            pass


@pytest.fixture
def root(admin):
    """A fresh, empty subtree for one test, wiped afterwards."""
    path = lib.unique_root()
    admin.ensure_path(path)
    yield path
    lib.wipe(admin, path)


@pytest.fixture(scope="session")
def c_client_binary(tmp_path_factory):
    """ZooKeeper's C client helper (``benchmarks/c/zkc_rounds.c`` of a
    source checkout), compiled once:
    ``(path, None)``, or ``(None, why)`` when it cannot be built."""
    return lib.build_c_client(str(tmp_path_factory.mktemp("zkc")))


@pytest.fixture
def c_reference(zk, c_client_binary):
    """``c_reference(op, path, n)``: ``({"zookeeper-c": round}, None)`` for
    ``Alternating``'s ``others`` (a session of ZooKeeper's C client making
    ``n`` synchronous ``op`` calls per round), or ``({}, why)``."""
    made = []

    def make(op, path, n):
        binary, why = c_client_binary
        why = lib.plaintext_only_reason() or why
        if binary is None or why:
            return {}, why
        client = lib.CClient(binary, zk.hosts)
        made.append(client)
        return {"zookeeper-c": lambda: client.round(op, path, n)}, None

    yield make
    for client in made:
        client.close()
