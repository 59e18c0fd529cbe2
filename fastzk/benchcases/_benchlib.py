"""Helpers shared by the benchmark files (not a benchmark itself).

Everything here is side-by-side plumbing: making a kazoo or a fastzk client
on the same server, reading the server's zxid, the process's RSS, building
and wiping test trees quickly; the clients (``_clients``), the C
reference programs (``_chelpers``) and the writer process (``_writer``)
live in modules of their own and are named here too.  Configuration comes
from the environment, set by ``fastzk bench`` (:mod:`fastzk.bench`) or by
hand:

``FASTZK_BENCH_HOSTS``
    connection string of the server to use (the conftest starts its own
    ZooKeeper when unset).
``FASTZK_BENCH_LOCAL_SERVER``
    ``1`` when ``FASTZK_BENCH_HOSTS`` is a server the runner started
    itself (then the TLS cases start a TLS server of their own; they are
    skipped against a user's ensemble, see :func:`tls_skip_reason`).
``FASTZK_BENCH_SECURITY``
    the TLS and SASL options of ``FASTZK_BENCH_HOSTS`` (see
    :data:`fastzk.benchcases._clients.SECURITY_VARIABLE`): every client
    is made with them; the C references, which speak plaintext only, are
    then left out (:data:`PLAINTEXT_ONLY_REASON`).
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

import contextlib
import gc
import os
import time
import uuid

from fastzk.benchcases._chelpers import (  # noqa: F401 (the cases' names)
    CClient,
    Measured,
    PLAINTEXT_ONLY_REASON,
    PythonLoop,
    RawLoop,
    RawReference,
    build_c_client,
    build_raw_loop,
    c_source,
    child_env,
    measured_from,
    parse_figures,
    plaintext_only_reason,
    raw_source,
    references,
)
from fastzk.benchcases._clients import (  # noqa: F401 (the cases' names)
    close_client,
    lock_class,
    make_client,
    security_options,
    tree_cache_class,
)
from fastzk.benchcases._writer import Writer  # noqa: F401 (the cases' names)
from fastzk.testing.zkserver import four_letter_word

IMPLS = ("kazoo", "fastzk")

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


class Transactions(object):
    """Server transactions per client, from the zxid read before and after
    each of its rounds (outside the timed part); ``around`` for
    :class:`Alternating`.  None once a read failed.

    :param zk: a client of the measured server (its ``zxid()``).
    :param impls: the clients counted.
    :param aliases: ``{name Alternating uses: name counted}`` (the asyncio
                    cases run aiozk in Alternating's "kazoo" slot).
    """

    def __init__(self, zk, impls, aliases=None):
        self.zk = zk
        self.count = {impl: 0 for impl in impls}
        self.aliases = dict(aliases or {})
        self._before = {}

    def around(self, impl, when):
        impl = self.aliases.get(impl, impl)
        zxid = self.zk.zxid()
        if when == "before":
            self._before[impl] = zxid
            return
        delta = zxid_delta(self._before.pop(impl, None), zxid)
        if delta is None or self.count[impl] is None:
            self.count[impl] = None
        else:
            self.count[impl] += delta

    def per(self, impl, operations):
        txns = self.count[impl]
        return None if txns is None or not operations else txns / float(operations)


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
