"""Helpers shared by the benchmark files (not a benchmark itself).

Everything here is side-by-side plumbing: making a kazoo or a fastzk client
on the same server, reading the server's zxid, the process's RSS, building
and wiping test trees quickly.  Configuration comes from the environment,
set by ``fastzk bench`` (:mod:`fastzk.bench`) or by hand:

``FASTZK_BENCH_HOSTS``
    connection string of the server to use (the conftest starts its own
    ZooKeeper when unset).
``FASTZK_BENCH_LOCAL_SERVER``
    ``1`` when ``FASTZK_BENCH_HOSTS`` is a server the runner started
    itself (then the TLS cases start a TLS server of their own; they are
    skipped against a user's ensemble, see :func:`tls_skip_reason`).
``FASTZK_BENCH_QUICK``
    ``1`` for a short smoke run (smaller counts everywhere).
``FASTZK_BENCH_MEM_N`` / ``FASTZK_BENCH_MEM_N_KAZOO``
    requests made by the client-memory case (fastzk / kazoo).
``FASTZK_BENCH_TREE_N``
    nodes in the TreeCache start/reconnect case.
``FASTZK_BENCH_STORM_RUNS``
    runs of the TreeCache update/delete storm with cuts, per client.
``FASTZK_BENCH_C_SOURCE``
    the C client helper's source (``benchmarks/c/zkc_rounds.c`` of a
    source checkout, found there by default).
``FASTZK_BENCH_RAW_SOURCE``
    the raw wire loop's source (``benchmarks/c/raw_rounds.c`` of a source
    checkout, found there by default).
"""

import collections
import contextlib
import gc
import os
import time
import uuid

from fastzk.testing.zkserver import four_letter_word

IMPLS = ("kazoo", "fastzk")

KAZOO_START_TIMEOUT = 30.0


#: Why the TLS cases do not run against a server given with ``--hosts``
#: (or ``FASTZK_BENCH_HOSTS``).
TLS_EXTERNAL_REASON = (
    "TLS rows need the local server the benchmark starts itself: the TLS "
    "port and certificates of a server given with --hosts are unknown")

#: The plaintext clients alternated with the TLS ones, in the results.
PLAIN_PARTNERS = {"kazoo": "kazoo-plain", "fastzk": "fastzk-plain"}


def tls_skip_reason(environ=None):
    """Why the TLS cases cannot run, or None: they run when the suite
    starts its own server (``FASTZK_BENCH_HOSTS`` unset) or the runner
    did (``FASTZK_BENCH_LOCAL_SERVER=1``)."""
    environ = os.environ if environ is None else environ
    if not environ.get("FASTZK_BENCH_HOSTS", "").strip():
        return None
    if environ.get("FASTZK_BENCH_LOCAL_SERVER", "") == "1":
        return None
    return TLS_EXTERNAL_REASON


def quick():
    """True for a ``--quick`` smoke run."""
    return os.environ.get("FASTZK_BENCH_QUICK", "") not in ("", "0")


def pick(full, short):
    """``full`` normally, ``short`` in a quick run."""
    return short if quick() else full


def env_int(name, full, short):
    """An integer from the environment, else ``pick(full, short)``."""
    value = os.environ.get(name, "").strip().replace("_", "").replace(",", "")
    if value:
        return int(float(value))
    return pick(full, short)


def client_class(impl):
    """The KazooClient class of ``impl`` ("kazoo" or "fastzk")."""
    if impl == "kazoo":
        from kazoo.client import KazooClient
    elif impl == "fastzk":
        from fastzk import KazooClient
    else:
        raise ValueError("unknown impl %r" % (impl,))
    return KazooClient


def make_client(impl, hosts, **kwargs):
    """Start and return a client of ``impl`` connected to ``hosts``."""
    kwargs.setdefault("timeout", 10.0)
    client = client_class(impl)(hosts=hosts, **kwargs)
    client.start(timeout=KAZOO_START_TIMEOUT)
    return client


def lock_class(impl):
    """The Lock recipe of ``impl``: kazoo's, or fastzk's."""
    if impl == "kazoo":
        from kazoo.recipe.lock import Lock
    else:
        from fastzk.lock import Lock
    return Lock


def tree_cache_class(impl):
    """The TreeCache recipe of ``impl``."""
    if impl == "kazoo":
        from kazoo.recipe.cache import TreeCache
    else:
        from fastzk.cache import TreeCache
    return TreeCache


def close_client(client):
    try:
        client.stop()
    finally:
        client.close()


# -- the server --------------------------------------------------------------

def first_host(hosts):
    """``(host, port)`` of the first server in a connection string."""
    item = hosts.split("/", 1)[0].split(",")[0].strip()
    host, _, port = item.rpartition(":")
    if not host:
        host, port = port, "2181"
    return host.strip("[]"), int(port)


def four_letter(hosts, word, timeout=5.0):
    host, port = first_host(hosts)
    return four_letter_word(host, port, word, timeout)


def server_zxid(hosts):
    """The server's last zxid (``srvr``), or None if it does not answer
    four-letter words (then transaction counts are not reported)."""
    import re

    try:
        text = four_letter(hosts, "srvr")
    except OSError:
        return None
    match = re.search(r"^Zxid:\s*(0x[0-9a-fA-F]+)", text, re.M)
    return int(match.group(1), 16) if match else None


def server_version(hosts):
    import re

    try:
        text = four_letter(hosts, "srvr")
    except OSError:
        return None
    match = re.search(r"^Zookeeper version:\s*([^,\s-]+)", text, re.M)
    return match.group(1) if match else None


def zxid_delta(before, after):
    if before is None or after is None:
        return None
    # The low 32 bits count transactions within an epoch.
    if (before >> 32) != (after >> 32):
        return None
    return after - before


# -- the process ----------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes():
    """Resident set size of this process, in bytes."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def settled_rss():
    gc.collect()
    return rss_bytes()


def cpu_seconds():
    t = os.times()
    return t.user + t.system


def process_cpu_seconds():
    """User + system CPU seconds of this process, all its threads
    (``getrusage(RUSAGE_SELF)``, microsecond resolution; ``os.times`` only
    counts clock ticks of 10 ms)."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return time.process_time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def environment(**values):
    """Set environment variables for the ``with`` block, then restore
    them (for settings a client reads when it is made)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -- trees --------------------------------------------------------------------------

def unique_root(prefix="bench"):
    return "/%s-%s" % (prefix, uuid.uuid4().hex[:12])


def _wait_all(results):
    for r in results:
        r.get()


def populate(client, root, names, data=b"", batch=2000):
    """Create ``root`` and a child for each name, pipelined."""
    client.ensure_path(root)
    names = list(names)
    for i in range(0, len(names), batch):
        _wait_all([client.create_async(root + "/" + n, data)
                   for n in names[i:i + batch]])


def wipe(client, root, batch=2000):
    """Delete ``root`` and everything below it, pipelined level by level."""
    from kazoo.exceptions import NoNodeError, NotEmptyError

    for _ in range(5):
        levels = []
        level = [root]
        try:
            while level:
                levels.append(level)
                results = [(p, client.get_children_async(p)) for p in level]
                nxt = []
                for p, r in results:
                    try:
                        nxt.extend(p + "/" + c for c in r.get())
                    except NoNodeError:
                        pass
                level = nxt
            for level in reversed(levels):
                for i in range(0, len(level), batch):
                    results = [client.delete_async(p)
                               for p in level[i:i + batch]]
                    for r in results:
                        try:
                            r.get()
                        except NoNodeError:
                            pass
            return
        except NotEmptyError:
            time.sleep(0.2)  # an ephemeral node appeared meanwhile


def wait_for(predicate, timeout, step=0.01):
    """Poll ``predicate()`` until true; return the seconds it took, or None
    on timeout."""
    start = time.perf_counter()
    deadline = start + timeout
    while True:
        if predicate():
            return time.perf_counter() - start
        if time.perf_counter() > deadline:
            return None
        time.sleep(step)


def record(benchmark, case, impl, ops_per_round=None, **metrics):
    """Attach what the runner's table needs to a pytest-benchmark result.

    ``ops_per_round``: operations one timed round performs (the runner
    derives a rate from the round times); ``metrics``: figures measured
    directly (rates, counts, bytes).
    """
    info = benchmark.extra_info
    info["case"] = case
    info["impl"] = impl
    if ops_per_round is not None:
        info["ops_per_round"] = ops_per_round
    info.setdefault("metrics", {}).update(metrics)


# -- rounds of the two clients, alternated ----------------------------------------

#: What a round run in another process reports: the seconds it took and
#: the CPU seconds that process used (None when unknown).
Measured = collections.namedtuple("Measured", "seconds cpu_seconds")


def timed_round(run):
    """Run one round; returns ``(seconds, cpu_seconds)``.

    A round that returns :class:`Measured` (a client in another process)
    reports both itself; one that returns a number reports its seconds and
    no CPU time (this process only waited for it); one that returns None
    ran here: both are measured around it, the CPU time as this process's
    (:func:`process_cpu_seconds`: every thread, since kazoo reads and
    writes in a thread of its own).
    """
    cpu = process_cpu_seconds()
    start = time.perf_counter()
    measured = run()
    seconds = time.perf_counter() - start
    used = process_cpu_seconds() - cpu
    if isinstance(measured, Measured):
        return measured.seconds, measured.cpu_seconds
    if measured is not None:
        return measured, None
    return seconds, used


class Alternating(object):
    """Time kazoo's rounds between fastzk's, for one pytest-benchmark case.

    On a shared virtual machine the speed of everything (the server
    included) drifts by 2x within seconds.  Measured one after the other,
    the two clients would meet different machines; alternated round by
    round they meet the same one.  Use as ``benchmark.pedantic``'s
    ``setup``: before each fastzk round (pytest-benchmark times it) it runs
    and times one kazoo round, then one round of each of ``others`` (a
    reference such as ZooKeeper's C client, whose round returns what it
    measured itself; see :func:`timed_round`).  ``around(impl, when)``, if
    given, is called with ``when`` "before" and "after" each kazoo and
    fastzk round, outside the timed part (to read the server's zxid, say).

    The CPU time of every round is kept beside its seconds (``cpu``); that
    of a fastzk round is this process's from the end of the setup to the
    start of the next one (or :meth:`close`), which adds only
    pytest-benchmark's reading of its clock.

    :param kazoo_round: runs one kazoo round.
    :param warmup_rounds: the first rounds to leave out of the times (pass
                          the same to ``pedantic``).
    :param others: ``{name: round}``, more clients to alternate with.
    """

    def __init__(self, kazoo_round, warmup_rounds=0, around=None,
                 others=None):
        self.kazoo_round = kazoo_round
        self.others = dict(others or {})
        self.times = {"kazoo": []}
        for name in self.others:
            self.times[name] = []
        #: CPU seconds of each counted round, per client (None: unknown).
        self.cpu = {name: [] for name in self.times}
        self.cpu["fastzk"] = []
        self._skip = warmup_rounds
        self._around = around or (lambda impl, when: None)
        self._fastzk_open = False
        self._fastzk_counted = False
        self._fastzk_cpu = 0.0

    def __call__(self):
        self.close()
        counted = not self._skip
        if self._skip:
            self._skip -= 1
        self._around("kazoo", "before")
        took = {"kazoo": timed_round(self.kazoo_round)}
        self._around("kazoo", "after")
        for name, run in self.others.items():
            took[name] = timed_round(run)
        if counted:
            for name, (seconds, cpu) in took.items():
                self.times[name].append(seconds)
                self.cpu[name].append(cpu)
        self._around("fastzk", "before")
        self._fastzk_open = True
        self._fastzk_counted = counted
        self._fastzk_cpu = process_cpu_seconds()

    def close(self):
        """End the accounting of the last fastzk round (call after
        ``pedantic`` returns)."""
        if self._fastzk_open:
            used = process_cpu_seconds() - self._fastzk_cpu
            self._fastzk_open = False
            if self._fastzk_counted:
                self.cpu["fastzk"].append(used)
            self._around("fastzk", "after")

    def cpu_us_per_op(self, name, ops_per_round):
        """Median CPU microseconds per operation of ``name``'s counted
        rounds, or None when not measured."""
        cpu = self.cpu.get(name) or []
        if not cpu or any(c is None for c in cpu) or not ops_per_round:
            return None
        return _median(sorted(cpu)) / ops_per_round * 1e6


def record_pair(benchmark, case, alternating, ops_per_round, kazoo=None,
                fastzk=None):
    """Record a case measured with :class:`Alternating`: pytest-benchmark's
    own figures are fastzk's; kazoo's round times (and the others') ride
    along as ``partners``.  ``kazoo`` and ``fastzk``: metrics of each (as
    :func:`record`'s).  Every client's ``cpu_us_per_op`` (median CPU
    microseconds per operation) joins its metrics when it was measured."""
    alternating.close()

    def with_cpu(name, metrics):
        metrics = dict(metrics or {})
        cpu = alternating.cpu_us_per_op(name, ops_per_round)
        if cpu is not None:
            metrics["cpu_us_per_op"] = cpu
        return metrics

    record(benchmark, case, "fastzk", ops_per_round=ops_per_round,
           **with_cpu("fastzk", fastzk))
    partners = []
    for impl, times in alternating.times.items():
        times = sorted(times)
        partners.append({
            "impl": impl,
            "ops_per_round": ops_per_round,
            "rounds": len(times),
            "median_s": _median(times),
            "metrics": with_cpu(impl, kazoo if impl == "kazoo" else None),
        })
    benchmark.extra_info["partners"] = partners


def _median(values):
    if not values:
        return None
    middle = len(values) // 2
    if len(values) % 2:
        return values[middle]
    return (values[middle - 1] + values[middle]) / 2.0


# -- ZooKeeper's C client, for reference -----------------------------------------

def package_root():
    """The directory holding the ``fastzk`` package these cases measure
    (a source checkout's root, or ``site-packages``)."""
    import fastzk

    return os.path.dirname(os.path.dirname(os.path.abspath(fastzk.__file__)))


def child_env():
    """The environment of a helper process: it imports the same fastzk."""
    env = dict(os.environ)
    root = package_root()
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"]
                                if env.get("PYTHONPATH") else "")
    return env


def _checkout_source(variable, name):
    path = os.environ.get(variable) or os.path.join(
        package_root(), "benchmarks", "c", name)
    return path if os.path.isfile(path) else None


def c_source():
    """The C client helper's source: ``FASTZK_BENCH_C_SOURCE``, else
    ``benchmarks/c/zkc_rounds.c`` of the source checkout fastzk runs from;
    None when neither exists (an installed package)."""
    return _checkout_source("FASTZK_BENCH_C_SOURCE", "zkc_rounds.c")


def raw_source():
    """The raw wire loop's source: ``FASTZK_BENCH_RAW_SOURCE``, else
    ``benchmarks/c/raw_rounds.c`` of the source checkout fastzk runs from;
    None when neither exists (an installed package)."""
    return _checkout_source("FASTZK_BENCH_RAW_SOURCE", "raw_rounds.c")


def _compile(source, binary, flags=(), libs=()):
    """Compile one C file; returns ``(binary, None)`` or ``(None, why)``."""
    import shutil
    import subprocess

    if source is None:
        return None, "source not installed (benchmarks/c of a fastzk checkout)"
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        return None, "no C compiler"
    proc = subprocess.run(
        [compiler, "-O2"] + list(flags) + ["-o", binary, source] + list(libs),
        capture_output=True, text=True)
    if proc.returncode != 0:
        return None, "build failed: %s" % proc.stderr.strip()[-300:]
    return binary, None


def build_c_client(workdir):
    """Compile ``benchmarks/c/zkc_rounds.c`` (:func:`c_source`) against
    libzookeeper_mt (Debian's ``libzookeeper-mt-dev``, installed by ``make
    bench``).

    :returns: ``(path, None)``, or ``(None, why)`` when it cannot be built.
    """
    source = c_source()
    if source is not None and not os.path.exists(
            "/usr/include/zookeeper/zookeeper.h"):
        return None, "libzookeeper-mt-dev not installed"
    return _compile(source, os.path.join(workdir, "zkc_rounds"),
                    flags=["-DTHREADED"], libs=["-lzookeeper_mt"])


_raw_builds: "dict[str | None, tuple[str | None, str | None]]" = {}


def build_raw_loop(workdir=None):
    """Compile ``benchmarks/c/raw_rounds.c`` (:func:`raw_source`; plain C,
    no library), once per process: into ``workdir``, else a temporary
    directory.

    :returns: ``(path, None)``, or ``(None, why)`` when it cannot be built.
    """
    import tempfile

    source = raw_source()
    if source not in _raw_builds:
        directory = workdir or tempfile.mkdtemp(prefix="fastzk-raw-")
        _raw_builds[source] = _compile(
            source, os.path.join(directory, "raw_rounds"))
    return _raw_builds[source]


def parse_figures(line):
    """The figures of one line a C helper prints, ``key=value`` pairs
    separated by spaces (``count=200 wall_s=0.0312 cpu_s=0.0021``), as a
    dict of ints (decimal or ``0x`` hex) and floats.

    :raises ValueError: on anything else, naming the line.
    """
    figures = {}
    for item in line.split():
        key, sep, text = item.partition("=")
        if not sep or not key or not text:
            raise ValueError("not key=value figures: %r" % (line,))
        try:
            figures[key] = int(text, 0)
        except ValueError:
            try:
                figures[key] = float(text)
            except ValueError:
                raise ValueError("not a number in %r: %r"
                                 % (line, item)) from None
    if not figures:
        raise ValueError("no figures in %r" % (line,))
    return figures


def measured_from(figures, count):
    """:class:`Measured` from a helper's figures for a round of ``count``
    requests.

    :raises ValueError: when the helper reports another count, or lacks
                        ``wall_s``.
    """
    if figures.get("count") != count:
        raise ValueError("the helper made %r requests, not %d"
                         % (figures.get("count"), count))
    if "wall_s" not in figures:
        raise ValueError("no wall_s in %r" % (figures,))
    return Measured(float(figures["wall_s"]),
                    None if "cpu_s" not in figures else float(figures["cpu_s"]))


class _Helper(object):
    """A C helper process (see ``benchmarks/c``) that answers one line of
    figures per command line."""

    what = "the helper"

    def __init__(self, argv):
        import subprocess

        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        #: The words of the helper's first line ("ready ...").
        self.ready = self.proc.stdout.readline().split()

    def command(self, line):
        """Send one command; returns its figures (:func:`parse_figures`)."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        if not reply:
            raise RuntimeError("%s failed (exit %s)"
                               % (self.what, self.proc.wait()))
        return parse_figures(reply)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
                self.proc.wait()


class CClient(_Helper):
    """One session of ZooKeeper's C client in a helper process, making
    timed rounds of synchronous reads on request (see
    ``benchmarks/c/zkc_rounds.c``).

    :param binary: from :func:`build_c_client`.
    """

    what = "the C client"

    def __init__(self, binary, hosts):
        super().__init__([binary, hosts])
        if self.ready != ["ready"]:
            self.close()
            raise RuntimeError("the C client did not connect to %s" % hosts)

    def round(self, op, path, n):
        """Make ``n`` synchronous ``op`` ("children" or "get") calls on
        ``path``; returns :class:`Measured`."""
        return measured_from(self.command("%s %s %d" % (op, path, n)), n)


class RawLoop(_Helper):
    """The client-side limit: one session spoken over one socket with no
    client logic, in a helper process (``benchmarks/c/raw_rounds.c``).

    :param binary: from :func:`build_raw_loop`.
    """

    what = "the raw loop"

    def __init__(self, binary, hosts):
        super().__init__([binary, hosts])
        if self.ready[:1] != ["ready"]:
            self.close()
            raise RuntimeError("the raw loop did not connect to %s" % hosts)
        #: The handshake's figures: ``session_id``, ``timeout_ms``.
        self.session = parse_figures(" ".join(self.ready[1:]))

    def children(self, path, n):
        """``n`` synchronous getChildren round trips; returns
        :class:`Measured`."""
        return measured_from(self.command("children %s %d" % (path, n)), n)

    def pipelined(self, path, n, window):
        """``n`` getChildren requests, ``window`` written then ``window``
        replies read at a time; returns :class:`Measured`."""
        return measured_from(
            self.command("pipelined %s %d %d" % (path, n, window)), n)


class RawReference(object):
    """``reference(path, n, window=None)``: ``({"raw-loop": round}, None)``
    for :class:`Alternating`'s ``others`` (a :class:`RawLoop` session
    making ``n`` synchronous getChildren round trips on ``path`` per
    round, or ``n`` pipelined ones in windows of ``window``), or ``({},
    why)`` when the loop cannot be built.  :meth:`close` ends the sessions
    it started."""

    name = "raw-loop"

    def __init__(self, hosts):
        self.hosts = hosts
        self._loops = []

    def __call__(self, path, n, window=None):
        binary, why = build_raw_loop()
        if binary is None:
            return {}, why
        loop = RawLoop(binary, self.hosts)
        self._loops.append(loop)
        if window is None:
            return {self.name: lambda: loop.children(path, n)}, None
        return {self.name: lambda: loop.pipelined(path, n, window)}, None

    def close(self):
        for loop in self._loops:
            loop.close()
        del self._loops[:]


def references(*results):
    """Merge ``(others, why)`` results of :class:`RawReference` and the
    ``c_reference`` fixture: ``(others, {"c_client_missing": why, ...})``
    with a ``*_missing`` entry for each reference left out."""
    others, missing = {}, {}
    for key, (more, why) in results:
        others.update(more)
        if why:
            missing[key] = why
    return others, missing


# -- a writer in another process ------------------------------------------------

def _writer_main(conn, hosts):
    """Body of :class:`Writer`'s process: run pipelined write batches on
    request and report how long each took."""
    from kazoo.exceptions import NoNodeError, NodeExistsError

    client = make_client("fastzk", hosts)
    conn.send("ready")
    try:
        while True:
            msg = conn.recv()
            if msg is None:
                break
            ops, window = msg
            start = time.perf_counter()
            pending = []
            errors = 0
            for op in ops:
                kind, path = op[0], op[1]
                if kind == "set":
                    pending.append(client.set_async(path, op[2]))
                elif kind == "create":
                    pending.append(client.create_async(path, op[2]))
                elif kind == "delete":
                    pending.append(client.delete_async(path))
                if len(pending) >= window:
                    for r in pending:
                        try:
                            r.get()
                        except (NoNodeError, NodeExistsError):
                            errors += 1
                    pending = []
            for r in pending:
                try:
                    r.get()
                except (NoNodeError, NodeExistsError):
                    errors += 1
            conn.send((time.perf_counter() - start, errors))
    finally:
        close_client(client)


class Writer(object):
    """A fastzk client in a separate process that applies batches of
    writes (``("set", path, data)``, ``("create", path, data)``,
    ``("delete", path)``) pipelined, so that the client under test has the
    CPU (and the GIL) to itself."""

    def __init__(self, hosts):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_writer_main, args=(child, hosts),
                                 daemon=True)
        self._proc.start()
        if not self._conn.poll(60) or self._conn.recv() != "ready":
            self.close()
            raise RuntimeError("writer process did not start")

    def start(self, ops, window=1000):
        """Send a batch; returns at once."""
        self._conn.send((list(ops), window))

    def wait(self, timeout=120):
        """Wait for the batch; returns (seconds it took, NoNode/NodeExists
        errors)."""
        if not self._conn.poll(timeout):
            raise RuntimeError("writer process did not finish its batch")
        return self._conn.recv()

    def run(self, ops, window=1000, timeout=120):
        self.start(ops, window)
        return self.wait(timeout)

    def close(self):
        try:
            self._conn.send(None)
        except (OSError, ValueError):
            pass
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
