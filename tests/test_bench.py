"""The benchmark runner: its plumbing (alternated rounds and how their
figures reach the table), and ``fastzk bench`` run from an installed
package, with and without a ZooKeeper."""

import os
import shutil
import subprocess
import sys

from fastzk.bench import suite_results
from fastzk.benchcases import _benchlib as lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeBenchmark(object):
    """pytest-benchmark's ``pedantic`` with a setup: warm-up rounds, then
    timed rounds, each preceded by the setup."""

    def __init__(self):
        self.extra_info = {}

    def pedantic(self, target, setup, rounds, warmup_rounds):
        for _ in range(warmup_rounds + rounds):
            setup()
            target()


def test_alternating_runs_kazoo_and_others_before_each_fastzk_round():
    log = []
    bench = FakeBenchmark()

    def c_round():
        log.append("c")
        return 0.25  # seconds, as the C client measured them

    pair = lib.Alternating(lambda: log.append("kazoo"), warmup_rounds=1,
                           around=lambda impl, when: log.append(when[0] + impl[0]),
                           others={"zookeeper-c": c_round})
    bench.pedantic(lambda: log.append("fastzk"), setup=pair, rounds=2,
                   warmup_rounds=1)
    lib.record_pair(bench, "case", pair, ops_per_round=10,
                    kazoo={"k": 1}, fastzk={"f": 2})
    one = ["bk", "kazoo", "ak", "c", "bf", "fastzk"]
    assert log == one + ["af"] + one + ["af"] + one + ["af"]
    kazoo, c = bench.extra_info["partners"]
    assert kazoo["impl"] == "kazoo" and kazoo["rounds"] == 2  # no warm-up
    assert kazoo["metrics"] == {"k": 1}
    assert c == {"impl": "zookeeper-c", "ops_per_round": 10, "rounds": 2,
                 "median_s": 0.25, "metrics": {}}
    assert bench.extra_info["metrics"] == {"f": 2}


def test_suite_results_split_an_alternated_case_into_both_clients():
    data = {"benchmarks": [{
        "name": "test_sync_get",
        "stats": {"median": 0.5, "rounds": 15},
        "extra_info": {
            "case": "client.sync_get", "impl": "fastzk",
            "ops_per_round": 200, "metrics": {"x": 1},
            "partners": [{"impl": "kazoo", "ops_per_round": 200,
                          "rounds": 15, "median_s": 2.0,
                          "metrics": {"x": 3}}],
        },
    }]}
    out = suite_results(data)
    assert out[("client.sync_get", "fastzk")]["rate"] == 400.0
    assert out[("client.sync_get", "fastzk")]["x"] == 1
    assert out[("client.sync_get", "kazoo")]["rate"] == 100.0
    assert out[("client.sync_get", "kazoo")]["x"] == 3
    assert out[("client.sync_get", "kazoo")]["rounds"] == 15


def test_median():
    assert lib._median([]) is None
    assert lib._median([3.0]) == 3.0
    assert lib._median([1.0, 2.0, 4.0, 9.0]) == 3.0


def test_c_client_note():
    from fastzk.bench import _c_client_note

    suite = {("k", "zookeeper-c"): {"rate": 300.0}}
    assert _c_client_note(suite, "k", 100.0) == \
        "ZooKeeper C client 300/s = 3.00x kazoo"
    suite = {("k", "fastzk"): {"c_client_missing": "no C compiler"}}
    assert _c_client_note(suite, "k", 100.0) == \
        "C client not measured: no C compiler"
    assert _c_client_note({}, "k", 100.0) == ""


def test_failed_attempt_row_names_the_read_bound():
    from fastzk.bench import build_rows

    suite = {("lock.failed_attempt", "kazoo"): {"rate": 500.0},
             ("lock.failed_attempt", "fastzk"): {"rate": 8000.0},
             ("lock.failed_attempt", "zookeeper-c"): {"rate": 9000.0}}
    rows = [r for r in build_rows(suite, None)[0]
            if r.key == "lock.failed_attempt"]
    assert len(rows) == 1
    assert rows[0].note == ("bound: one getChildren round trip (ZooKeeper C "
                            "client) 9,000/s = 18.0x kazoo")


def test_fleet_runs_both_clients_in_halves_kazoo_fastzk_fastzk_kazoo(
        monkeypatch):
    from fastzk.benchcases import fleet

    calls = []

    def fake_run_fleet(impl, hosts, params, cuts=False, zxid=None, log=None):
        calls.append((impl, params["duration"]))
        n = len(calls)  # the machine gets slower run after run
        return {"impl": impl, "seconds": params["duration"],
                "attempts": 1000 // n, "won": 10, "failed": 1000 // n - 10,
                "acquire_errors": 0, "server_txns": 20 * n,
                "client_cpu_seconds": 0.5 * n, "jobs": 10,
                "items_processed": 2, "violations": 0, "leaked_nodes": n % 2,
                "errors": 0, "stuck_threads": 0, "error_kinds": {"X": 1},
                "cuts_made": None,
                # the rates run_fleet adds (logged, then computed again)
                "attempts_per_s": 0.0, "txns_per_attempt": 0.0,
                "cpu_s_per_1000_attempts": 0.0}

    monkeypatch.setattr(fleet, "run_fleet", fake_run_fleet)
    params = fleet.scenario(quick=True, duration=8.0)
    results = fleet.run_all("h", params, variants=("held",),
                            log=lambda msg: None)
    assert calls == [("kazoo", 4.0), ("fastzk", 4.0), ("fastzk", 4.0),
                     ("kazoo", 4.0)]
    kazoo, fastzk = results
    assert (kazoo["impl"], fastzk["impl"]) == ("kazoo", "fastzk")
    # kazoo's halves were runs 1 and 4, fastzk's 2 and 3
    assert kazoo["attempts"] == 1000 + 250
    assert fastzk["attempts"] == 500 + 333
    assert kazoo["seconds"] == fastzk["seconds"] == 8.0
    assert kazoo["client_cpu_seconds"] == 2.5
    assert kazoo["attempts_per_cpu_s"] == 1250 / 2.5
    assert fastzk["txns_per_attempt"] == (40 + 60) / 833.0
    assert kazoo["leaked_nodes"] == 1 and fastzk["leaked_nodes"] == 1
    assert kazoo["error_kinds"] == {"X": 2}
    assert kazoo["variant"] == "held" and kazoo["runs"] == 2
    # one client alone: one run of the whole duration
    del calls[:]
    (alone,) = fleet.run_all("h", params, impls=("fastzk",),
                             variants=("held",), log=lambda msg: None)
    assert calls == [("fastzk", 8.0)] and alone["runs"] == 1


# ---------------------------------------------------------------------------
# fastzk bench from an installed package
# ---------------------------------------------------------------------------

def installed_copy(tmp_path):
    """The fastzk package alone in a directory of its own, as pip installs
    it: its metadata beside it, no ``benchmarks/`` of a checkout.  Returns
    that directory (for PYTHONPATH)."""
    import fastzk

    site = tmp_path / "site-packages"
    shutil.copytree(os.path.join(ROOT, "fastzk"), str(site / "fastzk"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    dist_info = site / ("fastzk-%s.dist-info" % fastzk.__version__)
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fastzk\nVersion: %s\n"
        % fastzk.__version__)
    return str(site)


def run_fastzk(args, pythonpath, cwd, env=None, timeout=240):
    """``python -m fastzk ARGS`` importing fastzk from ``pythonpath``, run
    in ``cwd``; returns the CompletedProcess (text)."""
    full_env = dict(os.environ, PYTHONPATH=pythonpath, **(env or {}))
    full_env.pop("FASTZK_BENCH_HOSTS", None)
    return subprocess.run([sys.executable, "-m", "fastzk"] + list(args),
                          cwd=str(cwd), env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def test_cases_ship_inside_the_package(tmp_path):
    site = installed_copy(tmp_path)
    code = ("import fastzk.bench as b, fastzk.benchcases.fleet, "
            "fastzk.benchcases.bench_lock; "
            "print(b.find_bench_dir()); print(b.checkout_benchmarks_dir()); "
            "print(b._default_json())")
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path),
                          env=dict(os.environ, PYTHONPATH=site),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:3] == [
        os.path.join(site, "fastzk", "benchcases"), "None", "None"]


def test_checkout_keeps_its_results_file_and_c_helper():
    from fastzk import bench

    assert bench.checkout_benchmarks_dir() == os.path.join(ROOT, "benchmarks")
    assert bench._default_json() == os.path.join(ROOT, "benchmarks",
                                                 "results.json")
    assert lib.c_source() == os.path.join(ROOT, "benchmarks", "c",
                                          "zkc_rounds.c")


def test_no_zookeeper_is_one_line_saying_how_to_get_one(tmp_path):
    proc = run_fastzk(["bench", "--quick"], installed_copy(tmp_path),
                      tmp_path, env={"FASTZK_ZOOKEEPER_JAR": "/nonexistent"},
                      timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].endswith(
        "error: no ZooKeeper found (no /nonexistent): install Debian's "
        "zookeeper package (apt-get install zookeeper) or pass --hosts "
        "HOST:PORT")
    assert proc.stdout == ""


def test_unreachable_hosts_is_a_one_line_error():
    from fastzk.bench import check_serves

    try:
        check_serves("127.0.0.1:1", timeout=1.0)
    except RuntimeError as exc:
        assert str(exc) == ("cannot connect to ZooKeeper at 127.0.0.1:1 "
                            "within 1 s (KazooTimeoutError)")
    else:
        raise AssertionError("check_serves did not raise")


def test_installed_package_measures_the_given_hosts(tmp_path, zk_hosts):
    """One short case, end to end: the shipped cases, against ``--hosts``,
    with no checkout to find ZooKeeper's C client helper in."""
    out = tmp_path / "out.json"
    proc = run_fastzk(["bench", "--quick", "--hosts", zk_hosts,
                       "--no-warmup", "--no-fleet", "-k",
                       "test_sync_get and not children",
                       "--json", str(out)],
                      installed_copy(tmp_path), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ZooKeeper 3." in proc.stderr
    assert "Traceback" not in proc.stderr
    (row,) = [line for line in proc.stdout.splitlines()
              if line.startswith("  sync get (/s)")]
    assert "C client not measured: source not installed (benchmarks/c of "\
        "a fastzk checkout)" in row
    import json

    with open(str(out)) as f:
        result = json.load(f)
    assert result["server"] == "external %s" % zk_hosts
    rates = {(s["case"], s["impl"]): s["rate"] for s in result["suite"]}
    assert rates[("client.sync_get", "kazoo")] > 0
    assert rates[("client.sync_get", "fastzk")] > 0
