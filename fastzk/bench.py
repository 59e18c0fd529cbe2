"""Benchmark runner: fastzk against kazoo 2.11, side by side, one table.

``fastzk bench`` (installed with ``pip install 'fastzk[bench]'``), ``make
bench`` and ``python benchmarks/run.py`` in a source checkout call
:func:`main`; so can a program::

    from fastzk.bench import main
    sys.exit(main(["--quick"]))

What it does, in order:

1. uses the ZooKeeper ``--hosts`` names, else starts a local one
   (:class:`fastzk.testing.zkserver.ZooKeeperServer`, Debian's
   ``zookeeper`` package), else stops with one line saying how to get one;
2. runs the pytest-benchmark cases shipped in :mod:`fastzk.benchcases`
   (codec, client round trips, memory, lock, watches, TreeCache) against
   it, in a subprocess, printing one progress line per case;
3. runs the fleet benchmark (``fastzk.benchcases.fleet``) last;
4. prints ONE table of fastzk/kazoo ratios, each marked better or worse
   and checked against its target, and writes the figures as JSON (date,
   machine, Python, ZooKeeper version, every figure) to ``--json``, by
   default ``benchmarks/results.json`` in a source checkout.

Speed is never asserted anywhere: the table reports; the exit status is
non-zero only when a benchmark could not run (or ``--strict`` is given and
a target was missed).

The local server comes from :mod:`fastzk.testing`, imported only when a
run needs it; the four-letter words from :mod:`fastzk.fourletter`.
"""

import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

__all__ = ["main", "run_suite", "run_fleet", "build_rows", "format_table",
           "write_plot", "machine_info", "TARGETS"]

IMPLS = ("kazoo", "fastzk")


# ---------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------

class Target(object):
    """What a row must show.  ``kind``:

    - ``"ratio"``: fastzk/kazoo >= value (higher is better);
    - ``"fewer"``: kazoo/fastzk >= value (lower is better: time, CPU,
      transactions);
    - ``"zero"``: fastzk's figure is 0;
    - ``"max"``: fastzk's figure <= value;
    - ``"min"``: fastzk's figure >= value.
    """

    def __init__(self, kind, value=None, text=None, source="brief"):
        self.kind = kind
        self.value = value
        self.text = text
        self.source = source

    def describe(self):
        if self.text:
            return self.text
        if self.kind == "ratio":
            return ">=%gx" % self.value
        if self.kind == "fewer":
            return ">=%gx less" % self.value
        if self.kind == "zero":
            return "0"
        if self.kind == "min":
            return ">=%g" % self.value
        return "<=%g" % self.value

    def met(self, kazoo, fastzk):
        """True/False, or None when it cannot be judged."""
        if fastzk is None:
            return None
        if self.kind == "zero":
            return fastzk == 0
        if self.kind == "max":
            return fastzk <= self.value
        if self.kind == "min":
            return fastzk >= self.value
        if kazoo is None:
            return None
        if self.kind == "ratio":
            return kazoo > 0 and fastzk / kazoo >= self.value
        if self.kind == "fewer":
            if fastzk == 0:
                return kazoo > 0
            return kazoo / fastzk >= self.value
        return None


#: Targets, from the issues that set them (issue 2: codec and client;
#: issue 3: Lock; issue 4: watches and TreeCache; issue 6: fleet; issue
#: 13: the client-side limit, figures over the raw wire loop's) and the
#: brief (memory flat; zero leaks, violations and unconverged storms).
TARGETS = {
    "codec": Target("ratio", 10, source="issue 2"),
    "client.sync_get_children": Target("ratio", 4, source="issue 2"),
    "client.sync_get": Target("ratio", 4, source="issue 2"),
    "client.pipelined_get_children": Target("ratio", 3, source="issue 2"),
    "client.memory": Target("max", 2.0, "flat (<=2 MiB)"),
    "lock.failed_attempt": Target("ratio", 20, source="issue 3"),
    "lock.failed_attempt.txns": Target("zero", text="0 writes",
                                       source="issue 3"),
    "lock.uncontended_cycle": Target("ratio", 2, source="issue 3"),
    "watch.events": Target("ratio", 5, source="issue 4"),
    "cache.start": Target("fewer", 5, source="issue 4"),
    "cache.storm": Target("zero", text="0 runs"),
    "fleet.attempts_per_cpu_s": Target("ratio", 10, source="issue 6"),
    "fleet.txns_per_attempt": Target("fewer", 20, source="issue 6"),
    "fleet.violations": Target("zero"),
    "fleet.leaked_nodes": Target("zero"),
    "limit.rate": Target("min", 1.0, ">=1x raw", source="issue 13"),
    "tls.vs_plain": Target("ratio", 1.0, ">=plaintext", source="issue 14"),
    "limit.cpu_spin_off": Target("max", 1.5, "<=1.5x raw",
                                 source="issue 13"),
}


# ---------------------------------------------------------------------------
# Machine and server
# ---------------------------------------------------------------------------

def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _uname_m():
    try:
        return subprocess.run(["uname", "-m"], stdout=subprocess.PIPE,
                              universal_newlines=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return platform.machine()


def _nproc():
    try:
        return int(subprocess.run(["nproc"], stdout=subprocess.PIPE,
                                  universal_newlines=True,
                                  timeout=10).stdout.strip())
    except (OSError, ValueError, subprocess.SubprocessError):
        return os.cpu_count()


def _load():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def machine_info(zookeeper_version=None):
    """What the figures were measured on."""
    import fastzk
    import kazoo

    try:
        from importlib.metadata import version
        kazoo_version = version("kazoo")
    except Exception:
        kazoo_version = getattr(kazoo, "__version__", None)
    return {
        "machine": _uname_m(),
        "nproc": _nproc(),
        "cpu_model": _cpu_model(),
        "python": "%s %s" % (platform.python_implementation(),
                             platform.python_version()),
        "zookeeper_version": zookeeper_version,
        "kazoo_version": kazoo_version,
        "fastzk_version": fastzk.__version__,
        "fastzk_core": "cython" if fastzk.EXTENSIONS else "python",
        "kernel": platform.release(),
    }


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


def check_serves(hosts, timeout=15.0):
    """Raise RuntimeError (one line) unless a client session can be opened
    on ``hosts`` within ``timeout`` seconds."""
    from fastzk.client import KazooClient

    try:
        client = KazooClient(hosts=hosts, timeout=10.0)
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

    def __init__(self, hosts=None):
        self.owned = None
        self.hosts = hosts
        self.version = None

    def start(self, log):
        if self.hosts:
            check_serves(self.hosts)
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
#: still running its request path in the interpreter.
WARMUP_REQUESTS = 20000

#: The warm-up of a ``--quick`` run, a smoke test whose figures are not
#: meant to be compared.
WARMUP_REQUESTS_QUICK = 5000


def warm_up(hosts, requests=WARMUP_REQUESTS, log=None):
    """Exercise the server's request path before anything is measured.

    Creates, lists, reads, checks, writes and deletes ``requests`` nodes
    (each kind ``requests`` times, pipelined, through one fastzk client) under ``/fastzk-warmup``, which is gone afterwards.
    Client-neutral: both clients are then measured against the same
    compiled server code.  Returns the seconds it took.
    """
    from fastzk.client import KazooClient

    started = time.monotonic()
    client = KazooClient(hosts=hosts, timeout=30.0)
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
# Running the two halves
# ---------------------------------------------------------------------------

def _package_root():
    """The directory that holds this ``fastzk`` package: a source
    checkout's root, or ``site-packages``."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cases_dir():
    """The directory of the shipped benchmark cases
    (:mod:`fastzk.benchcases`)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "benchcases")


def checkout_benchmarks_dir():
    """``benchmarks/`` of the source checkout this fastzk runs from, or
    None for an installed package."""
    path = os.path.join(_package_root(), "benchmarks")
    return path if os.path.isfile(os.path.join(path, "run.py")) else None


def find_bench_dir(explicit=None):
    """The benchmark cases: ``explicit`` (``--bench-dir``), else the ones
    shipped in :mod:`fastzk.benchcases`."""
    path = os.path.abspath(explicit or cases_dir())
    for name in ("conftest.py", "fleet.py"):
        if not os.path.isfile(os.path.join(path, name)):
            raise RuntimeError("benchmark files not found: no %s in %s"
                               % (name, path))
    return path


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


def _env(hosts, quick, local=False):
    env = dict(os.environ)
    env["FASTZK_BENCH_HOSTS"] = hosts
    # A server started here: the TLS cases may start one of their own.
    if local:
        env["FASTZK_BENCH_LOCAL_SERVER"] = "1"
    else:
        env.pop("FASTZK_BENCH_LOCAL_SERVER", None)
    env["FASTZK_BENCH_PROGRESS"] = "1"
    if quick:
        env["FASTZK_BENCH_QUICK"] = "1"
    else:
        env.pop("FASTZK_BENCH_QUICK", None)
    # The benchmark subprocesses import this very fastzk.
    root = _package_root()
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"]
                                if env.get("PYTHONPATH") else "")
    return env


def _have_pytest_timeout():
    return importlib.util.find_spec("pytest_timeout") is not None


def suite_argv(bench_dir, quick, workdir, out_json, select=None):
    """The pytest command line of the suite.

    pytest is given a configuration file of its own (an empty one written
    in ``workdir``) and ``bench_dir`` as its root, so that no pytest
    configuration of the directory the command runs in, or above the
    installed package, applies to the run.
    """
    ini = os.path.join(workdir, "pytest.ini")
    with open(ini, "w") as f:
        f.write("[pytest]\n")
    argv = [
        sys.executable, "-m", "pytest", bench_dir,
        "-c", ini, "--rootdir", bench_dir, "--confcutdir", bench_dir,
        "-q", "-p", "no:cacheprovider",
        "--benchmark-json=" + out_json,
        "--benchmark-sort=name",
        "--benchmark-max-time=%s" % ("0.1" if quick else "0.5"),
        "--benchmark-min-rounds=%d" % (3 if quick else 5),
    ]
    if _have_pytest_timeout():
        argv += ["-o", "timeout=1800"]
    if select:
        argv += ["-k", select]
    return argv


def run_suite(bench_dir, hosts, quick, workdir, log, select=None,
              local=False):
    """Run the pytest-benchmark suite; returns (returncode, its JSON or
    None, path of its log).  ``local``: ``hosts`` is a server started
    here, not one given with ``--hosts``."""
    out_json = os.path.join(workdir, "suite.json")
    log_path = os.path.join(workdir, "pytest.log")
    with open(log_path, "w") as logf:
        proc = subprocess.run(
            suite_argv(bench_dir, quick, workdir, out_json, select),
            stdout=logf, stderr=None, env=_env(hosts, quick, local),
            cwd=workdir)
    data = None
    if os.path.exists(out_json):
        with open(out_json) as f:
            data = json.load(f)
    return proc.returncode, data, log_path


def run_fleet(bench_dir, hosts, quick, workdir, log, variants=None):
    """Run the fleet benchmark; returns (returncode, its JSON or None)."""
    out_json = os.path.join(workdir, "fleet.json")
    argv = [sys.executable, os.path.join(bench_dir, "fleet.py"),
            "--hosts", hosts, "--json", out_json]
    if quick:
        argv.append("--quick")
    for variant in variants or ():
        argv += ["--variant", variant]
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=None,
                          env=_env(hosts, quick), cwd=workdir)
    data = None
    if os.path.exists(out_json):
        with open(out_json) as f:
            data = json.load(f)
    return proc.returncode, data


# ---------------------------------------------------------------------------
# From raw results to rows
# ---------------------------------------------------------------------------

def suite_results(data):
    """{(case, impl): {"rate": ops/s or None, "median_s": ..., metrics...}}
    from pytest-benchmark's JSON."""
    out = {}
    for bench in (data or {}).get("benchmarks", ()):
        info = bench.get("extra_info") or {}
        case, impl = info.get("case"), info.get("impl")
        if not case:
            continue
        stats = bench.get("stats") or {}
        median = stats.get("median")
        entry = dict(info.get("metrics") or {})
        entry["median_s"] = median
        entry["rounds"] = stats.get("rounds")
        ops = info.get("ops_per_round")
        entry["rate"] = (ops / median) if ops and median else None
        entry["name"] = bench.get("name")
        out[(case, impl)] = entry
        for partner in info.get("partners") or ():
            # Other clients' rounds, alternated with these (see
            # benchmarks/_benchlib.Alternating).
            other = dict(partner.get("metrics") or {})
            median = partner.get("median_s")
            ops = partner.get("ops_per_round")
            other["median_s"] = median
            other["rounds"] = partner.get("rounds")
            other["rate"] = (ops / median) if ops and median else None
            other["name"] = entry["name"]
            out[(case, partner["impl"])] = other
        for missing in ("c_client_missing", "raw_loop_missing",
                        "spin_on_missing"):
            if info.get(missing):
                entry[missing] = info[missing]
    return out


class Row(object):
    """One line of the table."""

    def __init__(self, label, kazoo, fastzk, unit="", higher_better=True,
                 target=None, note="", kazoo_text=None, fastzk_text=None,
                 ratio=True, key=None, judge=True):
        self.label = label
        self.kazoo = kazoo
        self.fastzk = fastzk
        self.unit = unit
        self.higher_better = higher_better
        self.target = target
        self.note = note
        self.kazoo_text = kazoo_text
        self.fastzk_text = fastzk_text
        self.show_ratio = ratio
        self.judge = judge
        self.key = key or label

    @property
    def ratio(self):
        if not self.show_ratio or self.kazoo is None or self.fastzk is None:
            return None
        if self.kazoo == 0:
            return None
        return self.fastzk / float(self.kazoo)

    def verdict(self):
        parts = []
        r = self.ratio if self.judge else None
        if r is not None:
            if abs(r - 1.0) < 0.05:
                parts.append("same")
            elif (r > 1.0) == self.higher_better:
                parts.append("better")
            else:
                parts.append("WORSE")
        elif self.judge and self.show_ratio and self.kazoo == 0 \
                and self.fastzk is not None:
            parts.append("same" if self.fastzk == 0 else (
                "WORSE" if not self.higher_better else "better"))
        met = self.target.met(self.kazoo, self.fastzk) if self.target else None
        if met is True:
            parts.append("target met")
        elif met is False:
            parts.append("target MISSED")
        return ", ".join(parts) or "-"

    def as_dict(self):
        return {
            "label": self.label,
            "key": self.key,
            "kazoo": self.kazoo,
            "fastzk": self.fastzk,
            "unit": self.unit,
            "ratio_fastzk_over_kazoo": self.ratio,
            "higher_is_better": self.higher_better,
            "target": self.target.describe() if self.target else None,
            "target_source": self.target.source if self.target else None,
            "target_met": (self.target.met(self.kazoo, self.fastzk)
                           if self.target else None),
            "verdict": self.verdict(),
            "note": self.note,
        }


def _get(results, case, impl, key="rate"):
    entry = results.get((case, impl))
    if entry is None:
        return None
    return entry.get(key)


_CODEC_CASES = (
    "encode getChildren",
    "encode getData",
    "encode create (ephemeral sequential)",
    "encode setData (100 B)",
    "decode getChildren reply (50 names)",
    "decode getData reply (100 B + Stat)",
    "decode setData reply (Stat)",
    "decode create reply",
    "decode watch event",
)


def _fmt_cpu(result):
    value = (result or {}).get("cpu_s_per_1000_attempts")
    return "n/a" if value is None else "%.3f" % value


def _fmt_count(n):
    return "{:,}".format(int(n)) if n is not None else "n/a"


_C_CLIENT = "ZooKeeper C client {:,.0f}/s = {:.2f}x kazoo"
# For the failed-attempt row: the floor of an attempt that reads first.
_READ_BOUND = ("bound: one getChildren round trip (ZooKeeper C client) "
               "{:,.0f}/s = {:.1f}x kazoo")


def _c_client_note(suite, key, kazoo, text=_C_CLIENT):
    """The ZooKeeper C client's figure for a row, if measured, formatted
    by ``text`` with its rate and its ratio to kazoo's."""
    c = _get(suite, key, "zookeeper-c")
    if c is not None and kazoo:
        return text.format(c, c / kazoo)
    missing = (suite.get((key, "fastzk")) or {}).get("c_client_missing")
    return "C client not measured: %s" % missing if missing else ""


#: The raw wire loop's and the fastzk client made with the opt-in spin
#: (``FASTZK_SPIN_US=200``; the default client does not spin), in the
#: suite's results (see fastzk.benchcases.bench_client).
RAW_LOOP = "raw-loop"
SPIN_ON = "fastzk-spin200"


def _cpu_us(entry):
    return (entry or {}).get("cpu_us_per_op")


def _cpu_row(suite, key, label="  CPU per request (us)"):
    """Client CPU microseconds per request of a round-trip case: kazoo's
    and fastzk's, the C client's and the raw loop's in the note."""
    others = []
    for name, impl in (("ZooKeeper C client", "zookeeper-c"),
                       ("raw loop", RAW_LOOP)):
        cpu = _cpu_us(suite.get((key, impl)))
        if cpu is not None:
            others.append("%s %.1f us" % (name, cpu))
    return Row(label, _cpu_us(suite.get((key, "kazoo"))),
               _cpu_us(suite.get((key, "fastzk"))), " us",
               higher_better=False, note=", ".join(others),
               key=key + ".cpu_us")


def _over_raw(suite, key, impl, figure):
    """``figure`` ("rate" or "cpu_us_per_op") of ``impl`` over the raw
    loop's in case ``key``, or None."""
    raw = (suite.get((key, RAW_LOOP)) or {}).get(figure)
    mine = (suite.get((key, impl)) or {}).get(figure)
    if not raw or mine is None:
        return None
    return mine / float(raw)


def _x(value):
    return "n/a" if value is None else "%.2fx" % value


def _limit_row(suite, key, label, figure, impl="fastzk", kazoo=True,
               target=None):
    """A row of the client-side-limit section: kazoo's and ``impl``'s
    ``figure`` as multiples of the raw loop's; the raw loop's own and the
    C client's multiple in the note."""
    k = _over_raw(suite, key, "kazoo", figure) if kazoo else None
    f = _over_raw(suite, key, impl, figure)
    raw = (suite.get((key, RAW_LOOP)) or {}).get(figure)
    if figure == "rate":
        note = "raw loop n/a" if raw is None else \
            "raw loop {:,.0f}/s".format(raw)
    else:
        note = "raw loop n/a" if raw is None else "raw loop %.1f us" % raw
    c = _over_raw(suite, key, "zookeeper-c", figure)
    if c is not None and kazoo:
        note += ", ZooKeeper C client %s" % _x(c)
    missing = (suite.get((key, "fastzk")) or {}).get("raw_loop_missing")
    if missing:
        note = "raw loop not measured: %s" % missing
    suffix = ".rate_over_raw" if figure == "rate" else ".cpu_over_raw"
    return Row(label, k, f, "", higher_better=figure == "rate",
               ratio=False, judge=False, target=target, note=note,
               kazoo_text="-" if not kazoo else _x(k), fastzk_text=_x(f),
               key=key + (suffix if impl == "fastzk"
                          else ".spin_on" + suffix))


def _has_limit(suite, key):
    """Whether case ``key`` measured the raw loop, or says why not."""
    return (key, RAW_LOOP) in suite or bool(
        (suite.get((key, "fastzk")) or {}).get("raw_loop_missing"))


def _limit_rows(suite):
    """The client-side-limit section: each client's throughput and CPU
    per request as multiples of the raw wire loop's, measured in the same
    alternated rounds."""
    rows = []
    sync = "client.sync_get_children"
    if _has_limit(suite, sync):
        rows.append(_limit_row(suite, sync, "sync get_children (/s)", "rate",
                               target=TARGETS["limit.rate"]))
        rows.append(_limit_row(suite, sync, "  CPU per request",
                               "cpu_us_per_op",
                               target=TARGETS["limit.cpu_spin_off"]))
        if (sync, SPIN_ON) in suite:
            rows.append(_limit_row(
                suite, sync, "  fastzk FASTZK_SPIN_US=200 (/s)", "rate",
                impl=SPIN_ON, kazoo=False, target=TARGETS["limit.rate"]))
            rows.append(_limit_row(
                suite, sync, "  CPU per request, FASTZK_SPIN_US=200",
                "cpu_us_per_op", impl=SPIN_ON, kazoo=False))
    pipelined = "client.pipelined_get_children"
    if _has_limit(suite, pipelined):
        rows.append(_limit_row(suite, pipelined, "2,000 pipelined (/s)",
                               "rate", target=TARGETS["limit.rate"]))
        rows.append(_limit_row(suite, pipelined, "  CPU per request",
                               "cpu_us_per_op"))
    lock = "lock.failed_attempt"
    if _has_limit(suite, lock):
        rows.append(_limit_row(suite, lock,
                               "failed non-blocking acquires (/s)", "rate",
                               target=TARGETS["limit.rate"]))
        rows.append(_limit_row(suite, lock, "  CPU per attempt",
                               "cpu_us_per_op"))
    return rows


def _spin_on_rows(suite, key):
    """fastzk with the opt-in spin (``FASTZK_SPIN_US=200``) beside kazoo
    in the same rounds: throughput and CPU per request, or why it was not
    measured."""
    on = suite.get((key, SPIN_ON))
    if on is None:
        missing = (suite.get((key, "fastzk")) or {}).get("spin_on_missing")
        if not missing:
            return []
        return [Row("  fastzk, FASTZK_SPIN_US=200", None, None, "/s",
                    key=key + ".spin_on", note="not measured: " + missing)]
    kazoo = suite.get((key, "kazoo")) or {}
    return [Row("  fastzk, FASTZK_SPIN_US=200", kazoo.get("rate"),
                on.get("rate"), "/s", key=key + ".spin_on",
                note="default (no spin): fastzk %s" % (
                    "n/a" if _get(suite, key, "fastzk") is None else
                    "{:,.0f}/s".format(_get(suite, key, "fastzk")))),
            Row("    CPU per request, FASTZK_SPIN_US=200 (us)",
                _cpu_us(kazoo), _cpu_us(on), " us", higher_better=False,
                key=key + ".spin_on.cpu_us")]


#: The TLS cases (fastzk.benchcases.bench_tls): their keys and labels,
#: and the plaintext clients alternated with them on the same server.
TLS_CASES = (
    ("tls.sync_get_children", "sync get_children", "  CPU per request (us)"),
    ("tls.pipelined_get_children", "2,000 pipelined get_children_async",
     "  CPU per request (us)"),
    ("tls.lock_failed_attempt", "failed non-blocking acquires, held lock",
     "  CPU per failed attempt (us)"),
)
PLAIN_PARTNERS = {"kazoo": "kazoo-plain", "fastzk": "fastzk-plain"}


def _tls_ratios(suite, key, figure):
    """fastzk's advantage in ``figure`` ("rate": fastzk/kazoo;
    "cpu_us_per_op": kazoo/fastzk, times less CPU) over TLS and over
    plaintext in the same rounds: ``(tls, plain)``, each None when not
    measured."""
    def advantage(kazoo, fastzk):
        k = (suite.get((key, kazoo)) or {}).get(figure)
        f = (suite.get((key, fastzk)) or {}).get(figure)
        if not k or not f:
            return None
        return f / float(k) if figure == "rate" else k / float(f)
    return (advantage("kazoo", "fastzk"),
            advantage(PLAIN_PARTNERS["kazoo"], PLAIN_PARTNERS["fastzk"]))


def _tls_vs_plain_row(suite, key, figure, label):
    """fastzk's advantage over kazoo over TLS beside the plaintext one
    (``_tls_ratios``); the row's ratio is TLS's over plaintext's, judged
    against ``TARGETS["tls.vs_plain"]``."""
    tls, plain = _tls_ratios(suite, key, figure)
    return Row(label, plain, tls, "", kazoo_text="plain " + _x(plain),
               fastzk_text="TLS " + _x(tls), target=TARGETS["tls.vs_plain"],
               key="%s.%s.vs_plain" % (key, "rate" if figure == "rate"
                                       else "cpu"))


def _tls_cost_note(suite, key):
    """What TLS adds per request for each client: its CPU per request
    over TLS minus over plaintext, same rounds."""
    parts = []
    for impl in IMPLS:
        tls = _cpu_us(suite.get((key, impl)))
        plain = _cpu_us(suite.get((key, PLAIN_PARTNERS[impl])))
        if tls is None or plain is None:
            parts.append("%s n/a" % impl)
        else:
            parts.append("%s %+.1f us (plaintext %.1f us)"
                         % (impl, tls - plain, plain))
    return "TLS adds: " + ", ".join(parts)


def _fmt_rate(rate):
    return "n/a" if rate is None else "{:,.0f}/s".format(rate)


def tls_missing_note(hosts):
    """The note saying why the TLS rows are missing: the server was given
    with ``--hosts`` (``hosts``), or None when the run started its own."""
    if not hosts:
        return None
    from fastzk.benchcases._benchlib import TLS_EXTERNAL_REASON

    return "over TLS: not measured (%s)." % TLS_EXTERNAL_REASON


def _tls_rows(suite):
    """The rows of the TLS section, one block per measured case."""
    rows = []
    for key, label, cpu_label in TLS_CASES:
        if (key, "fastzk") not in suite and (key, "kazoo") not in suite:
            continue
        k = _get(suite, key, "kazoo")
        pk = _get(suite, key, PLAIN_PARTNERS["kazoo"])
        pf = _get(suite, key, PLAIN_PARTNERS["fastzk"])
        rows.append(Row(label, k, _get(suite, key, "fastzk"), "/s", key=key,
                        note="plaintext, same rounds: kazoo %s, fastzk %s" % (
                            _fmt_rate(pk), _fmt_rate(pf))))
        rows.append(_tls_vs_plain_row(suite, key, "rate",
                                      "  fastzk/kazoo, plaintext vs TLS"))
        cpu = Row(cpu_label, _cpu_us(suite.get((key, "kazoo"))),
                  _cpu_us(suite.get((key, "fastzk"))), " us",
                  higher_better=False, key=key + ".cpu_us",
                  note=_tls_cost_note(suite, key))
        rows.append(cpu)
        rows.append(_tls_vs_plain_row(suite, key, "cpu_us_per_op",
                                      "    kazoo/fastzk CPU, plaintext vs TLS"))
    return rows


def build_rows(suite, fleet):
    """The table's rows from the suite's results (:func:`suite_results`)
    and the fleet's JSON."""
    rows = []
    sections = []

    def section(title):
        sections.append((len(rows), title))

    # -- codec ---------------------------------------------------------------
    if any(k[0].startswith("codec.") for k in suite):
        section("codec (frames/s; fastzk = compiled core, pure Python in "
                "the note)")
        for case in _CODEC_CASES:
            key = "codec." + case
            k = _get(suite, key, "kazoo")
            f = _get(suite, key, "fastzk")
            p = _get(suite, key, "fastzk-python")
            note = ""
            if p is not None and k:
                note = "pure Python %.1fx" % (p / k)
            rows.append(Row(case, k, f, "", note=note, key=key,
                            target=TARGETS["codec"]))

    # -- client ---------------------------------------------------------------
    if any(k[0].startswith("client.") for k in suite):
        section("client round trips (one local server)")
        for label, key in (("sync get_children", "client.sync_get_children"),
                           ("sync get", "client.sync_get")):
            k = _get(suite, key, "kazoo")
            rows.append(Row(label, k, _get(suite, key, "fastzk"), "/s",
                            target=TARGETS[key], key=key,
                            note=_c_client_note(suite, key, k)))
            if (key, "kazoo") in suite:
                rows.append(_cpu_row(suite, key))
            rows.extend(_spin_on_rows(suite, key))
        rows.append(Row("2,000 pipelined get_children_async",
                        _get(suite, "client.pipelined_get_children", "kazoo"),
                        _get(suite, "client.pipelined_get_children", "fastzk"),
                        "/s", target=TARGETS["client.pipelined_get_children"],
                        key="client.pipelined_get_children"))
        if ("client.pipelined_get_children", "kazoo") in suite:
            rows.append(_cpu_row(suite, "client.pipelined_get_children"))
        mk = suite.get(("client.memory", "kazoo"))
        mf = suite.get(("client.memory", "fastzk"))
        if mk or mf:
            nk = mk and mk.get("requests")
            nf = mf and mf.get("requests")
            label = "client RSS growth, 2nd half of run (MiB)"
            note = "requests: fastzk %s, kazoo %s" % (_fmt_count(nf),
                                                      _fmt_count(nk))
            if nk and nf and nk != nf:
                note += " (kazoo fewer: minutes otherwise)"
            rows.append(Row(label,
                            mk and mk.get("rss_growth_second_half_mib"),
                            mf and mf.get("rss_growth_second_half_mib"),
                            " MiB", higher_better=False, ratio=False,
                            target=TARGETS["client.memory"], note=note,
                            key="client.memory.second_half"))
            rows.append(Row("client RSS growth after warm-up (MiB)",
                            mk and mk.get("rss_growth_mib"),
                            mf and mf.get("rss_growth_mib"), " MiB",
                            higher_better=False, ratio=False,
                            note="RSS at end: kazoo %s, fastzk %s MiB" % (
                                "%.1f" % mk["rss_end_mib"] if mk else "n/a",
                                "%.1f" % mf["rss_end_mib"] if mf else "n/a"),
                            key="client.memory.growth"))
            rows.append(Row("  pipelined rate in that run",
                            mk and mk.get("pipelined_rate"),
                            mf and mf.get("pipelined_rate"), "/s",
                            key="client.memory.rate"))

    # -- lock -------------------------------------------------------------------
    if any(k[0].startswith("lock.") for k in suite):
        section("Lock (kazoo's Lock on kazoo vs fastzk's Lock on fastzk)")
        k = _get(suite, "lock.failed_attempt", "kazoo")
        rows.append(Row("failed non-blocking acquires, held lock (/s)",
                        k, _get(suite, "lock.failed_attempt", "fastzk"), "/s",
                        target=TARGETS["lock.failed_attempt"],
                        key="lock.failed_attempt",
                        note=_c_client_note(suite, "lock.failed_attempt", k,
                                            _READ_BOUND)))
        if ("lock.failed_attempt", "kazoo") in suite:
            rows.append(_cpu_row(suite, "lock.failed_attempt",
                                 "  CPU per failed attempt (us)"))
        rows.append(Row("  server transactions per failed attempt",
                        _get(suite, "lock.failed_attempt", "kazoo",
                             "txns_per_attempt"),
                        _get(suite, "lock.failed_attempt", "fastzk",
                             "txns_per_attempt"), "",
                        higher_better=False,
                        target=TARGETS["lock.failed_attempt.txns"],
                        key="lock.failed_attempt.txns"))
        rows.append(Row("uncontended acquire+release cycles",
                        _get(suite, "lock.uncontended_cycle", "kazoo"),
                        _get(suite, "lock.uncontended_cycle", "fastzk"), "/s",
                        target=TARGETS["lock.uncontended_cycle"],
                        key="lock.uncontended_cycle"))
        rows.append(Row("  server transactions per cycle",
                        _get(suite, "lock.uncontended_cycle", "kazoo",
                             "txns_per_cycle"),
                        _get(suite, "lock.uncontended_cycle", "fastzk",
                             "txns_per_cycle"), "", higher_better=False,
                        key="lock.uncontended_cycle.txns"))

    # -- over TLS ------------------------------------------------------------------
    tls = _tls_rows(suite)
    if tls:
        section("over TLS (client certificates; a plaintext kazoo and "
                "fastzk alternated in the same rounds, same server)")
        rows.extend(tls)

    # -- the client-side limit -------------------------------------------------
    limit = _limit_rows(suite)
    if limit:
        section("client-side limit: figure / the raw wire loop's "
                "(benchmarks/c/raw_rounds.c: one socket, no client logic), "
                "same rounds")
        rows.extend(limit)

    # -- watches and caches -------------------------------------------------------
    if any(k[0].startswith(("watch.", "cache.")) for k in suite):
        section("watches and TreeCache")
        wk = suite.get(("watch.events", "kazoo")) or {}
        wf = suite.get(("watch.events", "fastzk")) or {}
        ceiling = [x.get("writer_rate") for x in (wk, wf) if x.get("writer_rate")]
        rows.append(Row("change events delivered (/s)", wk.get("rate"),
                        wf.get("rate"), "/s",
                        note=("writer ceiling ~{:,.0f}/s".format(min(ceiling))
                              if ceiling else ""),
                        target=TARGETS["watch.events"],
                        key="watch.events"))
        ck = suite.get(("cache.events", "kazoo")) or {}
        cf = suite.get(("cache.events", "fastzk")) or {}
        ceiling = [x.get("writer_rate") for x in (ck, cf) if x.get("writer_rate")]
        rows.append(Row("TreeCache NODE_UPDATED events", ck.get("rate"),
                        cf.get("rate"), "/s",
                        note=("writer ceiling ~{:,.0f}/s".format(min(ceiling))
                              if ceiling else ""),
                        key="cache.events"))
        sk = suite.get(("cache.start", "kazoo")) or {}
        sf = suite.get(("cache.start", "fastzk")) or {}
        nodes = sk.get("nodes") or sf.get("nodes")
        rows.append(Row("TreeCache start, %s nodes" % _fmt_count(nodes),
                        sk.get("seconds_to_initialized"),
                        sf.get("seconds_to_initialized"), " s",
                        higher_better=False, target=TARGETS["cache.start"],
                        key="cache.start"))
        rk = suite.get(("cache.reconnect", "kazoo")) or {}
        rf = suite.get(("cache.reconnect", "fastzk")) or {}
        rows.append(Row("TreeCache converged after a cut",
                        rk.get("seconds_to_converge"),
                        rf.get("seconds_to_converge"), " s",
                        higher_better=False,
                        note="%s changes made while cut" % _fmt_count(
                            rk.get("changes") or rf.get("changes")),
                        key="cache.reconnect"))
        tk = suite.get(("cache.storm", "kazoo"))
        tf = suite.get(("cache.storm", "fastzk"))
        if tk or tf:
            def text(entry):
                if not entry:
                    return "n/a"
                return "%d of %d" % (entry["not_converged"], entry["runs"])
            rows.append(Row("storm with cuts: runs NOT converged",
                            tk and tk["not_converged"],
                            tf and tf["not_converged"], "",
                            higher_better=False, ratio=False,
                            kazoo_text=text(tk), fastzk_text=text(tf),
                            target=TARGETS["cache.storm"],
                            key="cache.storm"))

    # -- fleet ---------------------------------------------------------------------
    results = (fleet or {}).get("results") or []
    by = {(r["variant"], r["impl"]): r for r in results}
    titles = {
        "plain": "fleet, issue 6 (%s)",
        "cuts": "fleet with connection cuts (%s)",
        "held": "fleet, locks mostly held (%s)",
        "cached": "fleet, locks mostly held, fastzk cached_lock_checks=True "
                  "(%s)",
    }
    for variant in ("plain", "held", "cached", "cuts"):
        k, f = by.get((variant, "kazoo")), by.get((variant, "fastzk"))
        if not (k or f):
            continue
        any_r = k or f
        desc = "%d sessions/%d procs, %d items, %g-%g ms jobs" % (
            any_r["sessions"], any_r["processes"], any_r["items"],
            any_r["job_ms"][0], any_r["job_ms"][1])
        if variant == "cuts":
            desc += ", %d sessions cut" % any_r["sessions_cut"]
        section(titles[variant] % desc)

        def val(r, key):
            return None if r is None else r.get(key)

        def wf(r):
            if r is None:
                return "n/a"
            return "%s/%s" % (_fmt_count(r["won"]), _fmt_count(r["failed"]))

        tag = "fleet.%s." % variant
        rows.append(Row("lock attempts", val(k, "attempts_per_s"),
                        val(f, "attempts_per_s"), "/s",
                        key=tag + "attempts_per_s"))
        rows.append(Row("  attempts won/failed", None, None, ratio=False,
                        kazoo_text=wf(k), fastzk_text=wf(f),
                        key=tag + "won_failed"))
        if variant != "cuts":
            rows.append(Row("attempts per client CPU second",
                            val(k, "attempts_per_cpu_s"),
                            val(f, "attempts_per_cpu_s"), "",
                            target=TARGETS["fleet.attempts_per_cpu_s"],
                            note="CPU s/1000 attempts: %s vs %s" % (
                                _fmt_cpu(k), _fmt_cpu(f)),
                            key=tag + "attempts_per_cpu_s"))
            rows.append(Row("server transactions per attempt",
                            val(k, "txns_per_attempt"),
                            val(f, "txns_per_attempt"), "",
                            higher_better=False,
                            target=TARGETS["fleet.txns_per_attempt"],
                            key=tag + "txns_per_attempt"))
            rows.append(Row("server transactions",
                            val(k, "server_txns_per_s"),
                            val(f, "server_txns_per_s"), "/s",
                            higher_better=False, judge=False,
                            key=tag + "txns_per_s"))
        rows.append(Row("items processed", val(k, "items_processed"),
                        val(f, "items_processed"), "",
                        note="jobs done: %s vs %s" % (
                            _fmt_count(val(k, "jobs")),
                            _fmt_count(val(f, "jobs"))),
                        key=tag + "items_processed"))
        rows.append(Row("mutual-exclusion violations", val(k, "violations"),
                        val(f, "violations"), "", higher_better=False,
                        ratio=False, target=TARGETS["fleet.violations"],
                        key=tag + "violations"))
        note = ""
        if variant == "cuts":
            def cuts_text(r):
                c = (r or {}).get("cuts_made") or {}
                return "%s+%s" % (c.get("plain", "?"), c.get("on_delete", "?"))
            note = ("cuts (all + at a delete): kazoo %s, fastzk %s"
                    % (cuts_text(k), cuts_text(f)))
        rows.append(Row("contender nodes left behind", val(k, "leaked_nodes"),
                        val(f, "leaked_nodes"), "", higher_better=False,
                        ratio=False, target=TARGETS["fleet.leaked_nodes"],
                        note=note, key=tag + "leaked_nodes"))
    return rows, sections


def _fmt_value(v, unit):
    if v is None:
        return "n/a"
    if isinstance(v, float) and (unit in (" s", " MiB") or abs(v) < 10):
        if unit == " MiB":
            return "%+.1f" % v
        if abs(v) < 10:
            return "%.3f" % v if abs(v) < 1 else "%.2f" % v
    return "{:,.0f}".format(v)


def _fmt_ratio(r, higher_better):
    if r is None:
        return "-"
    if r == 0:
        return "0x"
    if r >= 10 or r <= 0.1:
        text = "%.0fx" % r if r >= 10 else "%.3fx" % r
    else:
        text = "%.2fx" % r
    if not higher_better and 0 < r < 1:
        text += " (%.0fx less)" % (1 / r) if 1 / r >= 10 else \
            " (%.1fx less)" % (1 / r)
    return text


def format_table(rows, sections, notes=()):
    """Render the rows as one text table."""
    head = ("%-46s %13s %13s %19s %12s  %s"
            % ("", "kazoo 2.11", "fastzk", "fastzk/kazoo", "target",
               "verdict"))
    width = len(head) + 12
    lines = [head, "-" * width]
    starts = dict(sections)
    for i, row in enumerate(rows):
        if i in starts:
            if i:
                lines.append("")
            lines.append(starts[i])
        kt = row.kazoo_text or _fmt_value(row.kazoo, row.unit)
        ft = row.fastzk_text or _fmt_value(row.fastzk, row.unit)
        label = "  " + row.label
        if row.unit.strip() in ("/s", "s") and not row.label.endswith(")"):
            label += " (%s)" % row.unit.strip()
        line = "%-46s %13s %13s %19s %12s  %s" % (
            label[:46], kt, ft, _fmt_ratio(row.ratio, row.higher_better),
            row.target.describe() if row.target else "",
            row.verdict() if (row.kazoo is not None or row.fastzk is not None)
            else "")
        if row.note:
            line += "  [%s]" % row.note
        lines.append(line.rstrip())
    lines.append("-" * width)
    for i, note in enumerate(notes):
        lines.append(note)
    return "\n".join(lines)


def _notes(suite, fleet, info, quick):
    notes = []
    if ("watch.events", "kazoo") in suite or ("watch.events", "fastzk") in suite:
        notes.append(
            "change events: fastzk = ONE persistent recursive watch "
            "(add_watch); kazoo 2.11 has no persistent watches, so its best "
            "equivalent is a DataWatch on every node (a get per event "
            "re-arms the one-shot watch).  TreeCache events: both read the "
            "data of every changed node.")
    tk = suite.get(("cache.storm", "kazoo"))
    tf = suite.get(("cache.storm", "fastzk"))
    if tk or tf:
        parts = []
        for name, entry in (("kazoo", tk), ("fastzk", tf)):
            if entry:
                parts.append(
                    "%s did not converge in %d of %d runs (content wrong in "
                    "%d, last event wrong in %d)" % (
                        name, entry["not_converged"], entry["runs"],
                        entry["content_wrong"], entry["last_event_wrong"]))
        text = ("TreeCache storm (random set/delete/create on 100 nodes, "
                "connection cut every 0.3-0.8 s): " + "; ".join(parts) + ".")
        if tk and tk.get("reasons"):
            text += "  kazoo, e.g.: %s." % tk["reasons"][0]
        notes.append(text)
    if fleet and fleet.get("results"):
        notes.append(
            "fleet: the loop of kazoo #732 (get_children, shuffle, a new "
            "non-blocking Lock per item, a job when won, release, delete the "
            "item when its work is done, pause); the job itself does not "
            "write to ZooKeeper, as in the issue.  Each variant runs in "
            "halves, kazoo, fastzk, fastzk, kazoo, added up per client.  "
            "attempts = acquire(blocking=False) calls; transactions = zxid "
            "delta; CPU = user+system of the worker processes.  With 20-50 "
            "ms jobs most "
            "locks are free when tried, so most attempts win and write with "
            "either client; the issue-6 targets assume most attempts meet a "
            "held lock, as in the issue (the 'mostly held' run).")
    if info.get("tls_missing"):
        notes.append(info["tls_missing"])
    if any(k.startswith("tls.") for k, _ in suite):
        notes.append(
            "over TLS: a server with a TLS port requiring client "
            "certificates (fastzk.testing.certs), started by the suite "
            "beside the run's server; kazoo and fastzk connect with "
            "use_ssl=True, ca, certfile, keyfile, verify_certs=True, and a "
            "plaintext kazoo and fastzk on the same server's plaintext port "
            "alternate with them round by round.  'plaintext vs TLS' rows: "
            "fastzk's advantage without and with TLS (target: TLS's at "
            "least plaintext's); 'TLS adds': CPU per request over TLS minus "
            "over plaintext, same rounds.")
    if any(impl == RAW_LOOP for _, impl in suite):
        notes.append(
            "client-side limit: the raw loop (benchmarks/c/raw_rounds.c) "
            "speaks the wire protocol over one socket with no client logic, "
            "in its own process, alternated round by round with the "
            "clients.  CPU per request = user+system CPU of the client's "
            "process (getrusage RUSAGE_SELF) over its rounds, median round: "
            "the C programs measure themselves; kazoo and fastzk are "
            "measured in the benchmark's process around each round, all "
            "threads (kazoo reads and writes in a thread of its own).  "
            "fastzk does not busy-poll by default; FASTZK_SPIN_US=200: a "
            "second fastzk client made with the opt-in spin, in the same "
            "rounds.")
    notes.append(
        "Ratios are fastzk/kazoo from one run on a shared machine "
        "(load average %s at start, %s at end); absolute figures drift up "
        "to 2x between runs.%s" % (
            info.get("load_start"), info.get("load_end"),
            " QUICK run: small counts, smoke test only." if quick else ""))
    return ["%d. %s" % (i + 1, n) for i, n in enumerate(notes)]


# ---------------------------------------------------------------------------
# Plot
# ---------------------------------------------------------------------------

def write_plot(rows, path, title=None):
    """Bar chart of the ratios (log scale).  Returns None on success, else
    the reason no plot was written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ("matplotlib is not installed: no plot written "
                "(pip install matplotlib)")
    items = []
    for row in rows:
        r = row.ratio
        if r is None or r <= 0 or not row.judge:
            continue
        better = r if row.higher_better else 1.0 / r
        items.append((row.key, better))
    if not items:
        return "no ratios to plot"
    fig, ax = plt.subplots(figsize=(10, max(4, 0.28 * len(items))))
    labels = [k for k, _ in items]
    values = [v for _, v in items]
    colors = ["#2a9d3f" if v >= 1 else "#c0392b" for v in values]
    # Bars grow from 1x: right = fastzk better, left = worse.
    ax.barh(range(len(items)), [v - 1.0 for v in values], left=1.0,
            color=colors)
    ax.set_yticks(range(len(items)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("fastzk advantage over kazoo 2.11 (x, log scale; "
                  ">1 = fastzk better)")
    if title:
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

def _parser():
    parser = argparse.ArgumentParser(
        prog="fastzk bench",
        description="Benchmark fastzk against kazoo 2.11 side by side and "
                    "print one table of ratios.")
    parser.add_argument("--quick", action="store_true",
                        help="a short smoke run (about 2 minutes; add "
                             "--no-fleet for 1)")
    parser.add_argument("--hosts", metavar="H",
                        help="measure against this ZooKeeper (e.g. "
                             "127.0.0.1:2181) instead of starting a local "
                             "one")
    parser.add_argument("--json", metavar="FILE",
                        help="write every figure here (default: "
                             "benchmarks/results.json in a source checkout, "
                             "none otherwise)")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="draw the ratios as a bar chart (needs "
                             "matplotlib)")
    parser.add_argument("--bench-dir", metavar="DIR",
                        help="run the benchmark cases in DIR (default: "
                             "the ones installed with fastzk, "
                             "fastzk/benchcases)")
    parser.add_argument("-k", dest="select", metavar="EXPR",
                        help="run only the suite cases matching this pytest "
                             "-k expression")
    parser.add_argument("--no-suite", action="store_true",
                        help="skip the pytest-benchmark suite")
    parser.add_argument("--no-fleet", action="store_true",
                        help="skip the fleet benchmark")
    parser.add_argument("--fleet-variant", action="append",
                        choices=("plain", "cuts", "held", "cached"),
                        help="run only this fleet variant (repeatable)")
    parser.add_argument("--no-warmup", action="store_true",
                        help="measure without warming the server up first "
                             "(see fastzk.bench.warm_up)")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 3 when a target is missed")
    return parser


def _default_json():
    checkout = checkout_benchmarks_dir()
    return os.path.join(checkout, "results.json") if checkout else None


def _cannot_run(args):
    """Why this run cannot start (one line), or None."""
    try:
        find_bench_dir(args.bench_dir)
    except RuntimeError as exc:
        return str(exc)
    if not args.no_suite:
        try:
            import pytest_benchmark  # noqa: F401
        except ImportError:
            return ("pytest-benchmark is not installed: pip install "
                    "'fastzk[bench]'")
    if not args.hosts:
        return local_zookeeper_problem()
    return None


def main(argv=None):
    """Run the benchmarks; returns the process exit status."""
    args = _parser().parse_args(argv)
    started = time.monotonic()

    def log(msg):
        sys.stderr.write("[%5.0fs] %s\n" % (time.monotonic() - started, msg))
        sys.stderr.flush()

    problem = _cannot_run(args)
    if problem:
        log("error: %s" % problem)
        return 2
    bench_dir = find_bench_dir(args.bench_dir)
    json_path = args.json or _default_json()
    server = _Server(args.hosts)
    log("starting ZooKeeper ..." if not args.hosts
        else "using ZooKeeper at %s" % args.hosts)
    try:
        server.start(log)
    except Exception as exc:
        log("error: %s" % exc if args.hosts
            else "error: could not start ZooKeeper: %s" % exc)
        return 2
    status = 0
    info = {}
    suite_data = fleet_data = None
    try:
        log("ZooKeeper %s at %s" % (server.version or "(unknown version)",
                                    server.hosts))
        info = machine_info(server.version)
        if not args.no_suite and tls_missing_note(args.hosts):
            info["tls_missing"] = tls_missing_note(args.hosts)
        if not args.no_warmup:
            log("warming the server up ...")
            warm_up(server.hosts, WARMUP_REQUESTS_QUICK if args.quick
                    else WARMUP_REQUESTS, log=log)
        info["load_start"] = ", ".join("%.1f" % x for x in _load() or ())
        workdir = tempfile.mkdtemp(prefix="fastzk-bench-")
        if not args.no_suite:
            log("pytest-benchmark suite (%s) ..." % (
                "quick" if args.quick else "full"))
            rc, suite_data, log_path = run_suite(
                bench_dir, server.hosts, args.quick, workdir, log,
                args.select, local=server.owned is not None)
            if rc != 0:
                status = 1
                log("suite FAILED (exit %d); pytest output: %s" % (rc, log_path))
                try:
                    with open(log_path) as f:
                        tail = f.read().splitlines()[-40:]
                    sys.stderr.write("\n".join(tail) + "\n")
                except OSError:
                    pass
            else:
                log("suite done")
        if not args.no_fleet:
            log("fleet benchmark ...")
            rc, fleet_data = run_fleet(bench_dir, server.hosts, args.quick,
                                       workdir, log, args.fleet_variant)
            if rc != 0:
                status = 1
                log("fleet benchmark FAILED (exit %d)" % rc)
            else:
                log("fleet done")
        info["load_end"] = ", ".join("%.1f" % x for x in _load() or ())
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        server.stop()

    suite = suite_results(suite_data)
    rows, sections = build_rows(suite, fleet_data)
    notes = _notes(suite, fleet_data, info, args.quick)
    header = ("fastzk %s (%s core) vs kazoo %s -- ZooKeeper %s -- %s, %s "
              "CPUs (%s), %s -- %s" % (
                  info.get("fastzk_version"), info.get("fastzk_core"),
                  info.get("kazoo_version"), info.get("zookeeper_version"),
                  info.get("machine"), info.get("nproc"),
                  info.get("cpu_model"), info.get("python"),
                  datetime.datetime.now().strftime("%Y-%m-%d %H:%M")))
    print()
    print(header)
    print(format_table(rows, sections, notes))

    missed = [r.label for r in rows
              if r.target and r.target.met(r.kazoo, r.fastzk) is False]
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "quick": bool(args.quick),
        "server": "external %s" % args.hosts if args.hosts else "local",
        "machine": info,
        "seconds": time.monotonic() - started,
        "rows": [r.as_dict() for r in rows],
        "targets_missed": missed,
        "notes": notes,
        "suite": [
            dict(case=case, impl=impl, **{k: v for k, v in entry.items()})
            for (case, impl), entry in sorted(suite.items())
        ],
        "fleet": fleet_data,
        "status": status,
    }
    if json_path is None:
        log("figures not kept: pass --json FILE to write them all")
    else:
        try:
            with open(json_path, "w") as f:
                json.dump(result, f, indent=2, default=str)
            log("results written to %s" % json_path)
        except OSError as exc:
            log("error: cannot write %s: %s" % (json_path, exc))
            status = status or 1
    if args.plot:
        problem = write_plot(rows, args.plot, header)
        if problem:
            log(problem)
        else:
            log("plot written to %s" % args.plot)
    if status == 0 and args.strict and missed:
        status = 3
    return status


if __name__ == "__main__":
    sys.exit(main())
