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
    assert kazoo["metrics"]["k"] == 1
    assert set(kazoo["metrics"]) == {"k", "cpu_us_per_op"}
    # a bare number is the seconds a helper measured: its CPU is unknown
    assert c == {"impl": "zookeeper-c", "ops_per_round": 10, "rounds": 2,
                 "median_s": 0.25, "metrics": {}}
    assert bench.extra_info["metrics"]["f"] == 2
    assert set(bench.extra_info["metrics"]) == {"f", "cpu_us_per_op"}


def burn_cpu(seconds):
    """Spin this thread for ``seconds`` of its own CPU time."""
    import time

    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_alternating_keeps_each_rounds_cpu_time():
    """In-process rounds are charged this process's CPU time around them;
    a helper's :class:`Measured` round its own figure; warm-up rounds
    neither."""
    bench = FakeBenchmark()
    helper = iter([lib.Measured(9.0, 9.0),  # warm-up: left out
                   lib.Measured(0.5, 0.002), lib.Measured(0.7, 0.004),
                   lib.Measured(0.6, 0.003)])
    pair = lib.Alternating(lambda: burn_cpu(0.02), warmup_rounds=1,
                           others={"raw-loop": lambda: next(helper)})
    bench.pedantic(lambda: burn_cpu(0.05), setup=pair, rounds=3,
                   warmup_rounds=1)
    lib.record_pair(bench, "case", pair, ops_per_round=100)
    assert pair.times["raw-loop"] == [0.5, 0.7, 0.6]
    assert pair.cpu["raw-loop"] == [0.002, 0.004, 0.003]
    assert len(pair.cpu["kazoo"]) == len(pair.cpu["fastzk"]) == 3
    kazoo, raw = bench.extra_info["partners"]
    assert abs(raw["metrics"]["cpu_us_per_op"] - 30.0) < 1e-9  # 3 ms / 100
    # 20 ms and 50 ms of CPU per round of 100: about 200 and 500 us each
    assert 190 <= kazoo["metrics"]["cpu_us_per_op"] < 400
    assert 490 <= bench.extra_info["metrics"]["cpu_us_per_op"] < 700


def test_timed_round_tells_a_helpers_figures_from_its_own():
    assert lib.timed_round(lambda: lib.Measured(1.5, 0.25)) == (1.5, 0.25)
    assert lib.timed_round(lambda: lib.Measured(1.5, None)) == (1.5, None)
    assert lib.timed_round(lambda: 2.5) == (2.5, None)
    seconds, cpu = lib.timed_round(lambda: burn_cpu(0.03))
    assert seconds >= 0.03 and 0.03 <= cpu < 0.2


# ---------------------------------------------------------------------------
# The C helpers' figures
# ---------------------------------------------------------------------------

def test_parse_figures_of_the_c_helpers():
    assert lib.parse_figures(
        "count=200 wall_s=0.031200000 cpu_s=0.002100000 children=10\n") == {
            "count": 200, "wall_s": 0.0312, "cpu_s": 0.0021, "children": 10}
    assert lib.parse_figures("session_id=0x1000015c4a90001 timeout_ms=30000") \
        == {"session_id": 0x1000015c4a90001, "timeout_ms": 30000}


def test_parse_figures_rejects_anything_else():
    import pytest

    for line in ("", "\n", "0.123456\n", "count=", "=3", "count=ten",
                 "count=1 wall_s"):
        with pytest.raises(ValueError):
            lib.parse_figures(line)


def test_measured_from_checks_the_count():
    import pytest

    figures = {"count": 200, "wall_s": 0.5, "cpu_s": 0.1}
    assert lib.measured_from(figures, 200) == lib.Measured(0.5, 0.1)
    assert lib.measured_from({"count": 3, "wall_s": 0.5}, 3) == \
        lib.Measured(0.5, None)
    with pytest.raises(ValueError, match="made 200 requests, not 100"):
        lib.measured_from(figures, 100)
    with pytest.raises(ValueError, match="no wall_s"):
        lib.measured_from({"count": 3}, 3)


def test_checkout_has_the_raw_loop_source():
    assert lib.raw_source() == os.path.join(ROOT, "benchmarks", "c",
                                            "raw_rounds.c")


def test_raw_loop_handshake_and_100_round_trips(zk_server, zk_admin):
    """The raw wire loop against a real server: a session, 100 synchronous
    and 100 pipelined getChildren round trips, sane figures."""
    import uuid

    binary, why = lib.build_raw_loop()
    assert binary is not None, why
    path = "/raw-%s" % uuid.uuid4().hex[:8]
    zk_admin.ensure_path(path)
    for i in range(3):
        zk_admin.create("%s/c%d" % (path, i))
    loop = lib.RawLoop(binary, zk_server.address)
    try:
        assert loop.session["session_id"] > 0
        assert 1000 <= loop.session["timeout_ms"] <= 60000
        figures = loop.command("children %s 100" % path)
        assert figures["count"] == 100 and figures["children"] == 3
        assert 0 < figures["wall_s"] < 30
        # one thread: no more CPU than wall time (plus a clock tick)
        assert 0 <= figures["cpu_s"] <= figures["wall_s"] + 0.01
        piped = loop.pipelined(path, 100, 30)
        assert 0 < piped.seconds < 30
        assert 0 <= piped.cpu_seconds <= piped.seconds + 0.01
        zk_admin.create("%s/c3" % path)
        assert loop.command("pipelined %s 7 7" % path)["children"] == 4
    finally:
        loop.close()
        zk_admin.delete(path, recursive=True)
    assert loop.proc.returncode == 0


def test_python_loop_handshake_and_100_round_trips(zk_server, zk_admin):
    """The raw loop written in Python against a real server: a session,
    100 synchronous getChildren round trips, sane figures, a clean
    close."""
    import uuid

    path = "/pyloop-%s" % uuid.uuid4().hex[:8]
    zk_admin.ensure_path(path)
    for i in range(3):
        zk_admin.create("%s/c%d" % (path, i))
    loop = lib.PythonLoop(zk_server.address)
    try:
        figures = loop.command("children %s 100" % path)
        assert figures["count"] == 100 and figures["children"] == 3
        assert 0 < figures["wall_s"] < 30
        assert 0 <= figures["cpu_s"] <= figures["wall_s"] + 0.01
        zk_admin.create("%s/c3" % path)
        measured = loop.children(path, 7)
        assert 0 < measured.seconds < 30
        assert loop.command("children %s 1" % path)["children"] == 4
    finally:
        loop.close()
        zk_admin.delete(path, recursive=True)
    assert loop.proc.returncode == 0


def test_python_loop_reports_a_server_error_and_exits(zk_server):
    import pytest

    loop = lib.PythonLoop(zk_server.address)
    try:
        with pytest.raises(RuntimeError,
                           match=r"Python loop failed \(exit 1\)"):
            loop.children("/no-such-node-%s" % os.getpid(), 1)
    finally:
        loop.close()


def test_raw_loop_reports_a_server_error_and_exits(zk_server):
    import pytest

    binary, why = lib.build_raw_loop()
    assert binary is not None, why
    loop = lib.RawLoop(binary, zk_server.address)
    try:
        with pytest.raises(RuntimeError, match=r"raw loop failed \(exit 1\)"):
            loop.children("/no-such-node-%s" % os.getpid(), 1)
    finally:
        loop.close()


# ---------------------------------------------------------------------------
# The rows of the table
# ---------------------------------------------------------------------------

def limit_suite():
    """Results of the three round-trip cases with every client, as
    suite_results gives them."""
    suite = {}
    for key, rates, cpus in (
            ("client.sync_get_children",
             {"kazoo": 3000.0, "fastzk": 6000.0, "zookeeper-c": 5000.0,
              "raw-loop": 10000.0, "fastzk-spin200": 8000.0},
             {"kazoo": 150.0, "fastzk": 12.0, "zookeeper-c": 40.0,
              "raw-loop": 10.0, "fastzk-spin200": 60.0}),
            ("client.pipelined_get_children",
             {"kazoo": 3000.0, "fastzk": 20000.0, "raw-loop": 16000.0},
             {"kazoo": 110.0, "fastzk": 18.0, "raw-loop": 6.0}),
            ("lock.failed_attempt",
             {"kazoo": 300.0, "fastzk": 6000.0, "zookeeper-c": 4000.0,
              "raw-loop": 8000.0},
             {"kazoo": 1500.0, "fastzk": 70.0, "zookeeper-c": 100.0,
              "raw-loop": 20.0})):
        for impl in rates:
            suite[(key, impl)] = {"rate": rates[impl],
                                  "cpu_us_per_op": cpus[impl]}
    return suite


def rows_by_key(suite):
    from fastzk.bench import build_rows

    return {row.key: row for row in build_rows(suite, None)[0]}


def test_limit_rows_are_figures_over_the_raw_loops():
    rows = rows_by_key(limit_suite())
    sync = rows["client.sync_get_children.rate_over_raw"]
    assert (sync.kazoo, sync.fastzk) == (0.3, 0.6)
    assert (sync.kazoo_text, sync.fastzk_text) == ("0.30x", "0.60x")
    assert sync.note == "raw loop 10,000/s, ZooKeeper C client 0.50x"
    assert sync.verdict() == "target MISSED"  # fastzk below the raw loop
    cpu = rows["client.sync_get_children.cpu_over_raw"]
    assert (cpu.kazoo, cpu.fastzk) == (15.0, 1.2)
    assert cpu.note == "raw loop 10.0 us, ZooKeeper C client 4.00x"
    assert cpu.higher_better is False and cpu.verdict() == "target met"
    on = rows["client.sync_get_children.spin_on.rate_over_raw"]
    assert (on.kazoo, on.fastzk, on.kazoo_text) == (None, 0.8, "-")
    assert on.verdict() == "target MISSED"
    on_cpu = rows["client.sync_get_children.spin_on.cpu_over_raw"]
    assert on_cpu.fastzk == 6.0 and on_cpu.verdict() == "-"
    piped = rows["client.pipelined_get_children.rate_over_raw"]
    assert piped.fastzk == 1.25 and piped.verdict() == "target met"
    assert piped.note == "raw loop 16,000/s"
    lock = rows["lock.failed_attempt.cpu_over_raw"]
    assert (lock.kazoo, lock.fastzk) == (75.0, 3.5)


def test_unbatched_pipelined_rows_are_figures_over_the_raw_loops():
    suite = limit_suite()
    key = "client.pipelined_get_children"
    assert key + ".unbatched.rate_over_raw" not in rows_by_key(suite)
    suite[(key, "fastzk-unbatched")] = {"rate": 12000.0,
                                        "cpu_us_per_op": 24.0}
    rows = rows_by_key(suite)
    rate = rows[key + ".unbatched.rate_over_raw"]
    assert (rate.kazoo_text, rate.fastzk_text) == ("-", "0.75x")
    assert rate.note == "raw loop 16,000/s"
    cpu = rows[key + ".unbatched.cpu_over_raw"]
    assert cpu.fastzk == 4.0 and cpu.verdict() == "-"
    # The batched client's own rows are unchanged.
    assert rows[key + ".cpu_over_raw"].fastzk == 3.0


def test_python_loop_rows_are_figures_over_the_raw_loops():
    suite = limit_suite()
    sync = "client.sync_get_children"
    suite[(sync, "python-loop")] = {"rate": 9000.0, "cpu_us_per_op": 15.0}
    rows = rows_by_key(suite)
    rate = rows[sync + ".python_loop.rate_over_raw"]
    assert (rate.kazoo, rate.fastzk, rate.kazoo_text) == (None, 0.9, "-")
    cpu = rows[sync + ".python_loop.cpu_over_raw"]
    assert cpu.fastzk == 1.5
    # fastzk's 12 us over the Python loop's 15 us
    assert cpu.note == "raw loop 10.0 us; fastzk 0.80x this loop's"
    assert cpu.verdict() == "-"
    # the fastzk rows are the same with or without the Python loop
    assert rows[sync + ".cpu_over_raw"].fastzk == 1.2


def test_rows_say_why_the_python_loop_is_missing():
    suite = limit_suite()
    sync = "client.sync_get_children"
    assert sync + ".python_loop" not in rows_by_key(suite)
    suite[(sync, "fastzk")]["python_loop_missing"] = "plaintext only"
    row = rows_by_key(suite)[sync + ".python_loop"]
    assert row.note == "not measured: plaintext only"
    assert sync + ".python_loop.cpu_over_raw" not in rows_by_key(suite)


def test_cpu_per_request_rows_beside_each_round_trip_row():
    rows = rows_by_key(limit_suite())
    sync = rows["client.sync_get_children.cpu_us"]
    assert (sync.kazoo, sync.fastzk, sync.unit) == (150.0, 12.0, " us")
    assert sync.note == "ZooKeeper C client 40.0 us, raw loop 10.0 us"
    assert sync.ratio == 0.08 and sync.verdict() == "better"
    assert rows["client.pipelined_get_children.cpu_us"].note == \
        "raw loop 6.0 us"
    assert rows["lock.failed_attempt.cpu_us"].fastzk == 70.0
    on = rows["client.sync_get_children.spin_on"]
    assert (on.kazoo, on.fastzk) == (3000.0, 8000.0)
    assert on.note == "default (no spin): fastzk 6,000/s"
    assert rows["client.sync_get_children.spin_on.cpu_us"].fastzk == 60.0


def test_the_cpu_target_over_the_raw_loop_is_the_default_clients():
    suite = limit_suite()
    sync = "client.sync_get_children"
    suite[(sync, "fastzk")]["cpu_us_per_op"] = 16.0  # 1.6x the raw loop
    suite[(sync, "fastzk-spin200")]["cpu_us_per_op"] = 14.0
    rows = rows_by_key(suite)
    assert rows[sync + ".cpu_over_raw"].verdict() == "target MISSED"
    assert rows[sync + ".spin_on.cpu_over_raw"].verdict() == "-"


def test_rows_say_why_the_spinning_client_is_missing():
    suite = limit_suite()
    sync = "client.sync_get_children"
    del suite[(sync, "fastzk-spin200")]
    rows = rows_by_key(suite)
    assert sync + ".spin_on.rate_over_raw" not in rows
    assert sync + ".spin_on.cpu_us" not in rows
    assert sync + ".spin_on" not in rows
    suite[(sync, "fastzk")]["spin_on_missing"] = "no compiled core"
    on = rows_by_key(suite)[sync + ".spin_on"]
    assert (on.kazoo, on.fastzk) == (None, None)
    assert on.note == "not measured: no compiled core"


def test_the_spinning_client_has_the_ceiling_asked_for(zk_hosts,
                                                       monkeypatch):
    import fastzk
    from fastzk.benchcases import bench_client

    monkeypatch.delenv("FASTZK_SPIN_US", raising=False)
    made = []

    def clients(impl):
        made.append(lib.make_client(impl, zk_hosts))
        return made[-1]

    try:
        client, why = bench_client.spin_on_client(clients)
        assert "FASTZK_SPIN_US" not in os.environ
        if fastzk.EXTENSIONS:
            assert why is None
            assert bench_client.spin_ceiling_us(client) == 200
            assert bench_client.SPIN_ON == "fastzk-spin200"
        else:
            assert (client, why) == (None,
                                     "the pure-Python core does not spin")
        default = clients("fastzk")
        assert bench_client.spin_ceiling_us(default) == 0
    finally:
        for client in made:
            lib.close_client(client)


def test_limit_rows_say_why_the_raw_loop_is_missing():
    from fastzk.bench import format_table, build_rows

    suite = limit_suite()
    suite[("client.sync_get_children", "fastzk")]["raw_loop_missing"] = \
        "no C compiler"
    rows = rows_by_key(suite)
    assert rows["client.sync_get_children.rate_over_raw"].note == \
        "raw loop not measured: no C compiler"
    # no raw-loop figures: the reason, else no section at all
    plain = {k: v for k, v in limit_suite().items() if k[1] != "raw-loop"}
    plain[("lock.failed_attempt", "fastzk")]["raw_loop_missing"] = "no cc"
    rows, sections = build_rows(plain, None)
    over_raw = [r for r in rows if r.key.endswith("_over_raw")]
    assert [r.key for r in over_raw] == ["lock.failed_attempt.rate_over_raw",
                                         "lock.failed_attempt.cpu_over_raw"]
    assert over_raw[0].note == "raw loop not measured: no cc"
    assert over_raw[0].fastzk is None and over_raw[0].fastzk_text == "n/a"
    assert "raw wire loop" in format_table(rows, sections)
    del plain[("lock.failed_attempt", "fastzk")]["raw_loop_missing"]
    rows, sections = build_rows(plain, None)
    assert not [r for r in rows if r.key.endswith("_over_raw")]
    assert "raw wire loop" not in format_table(rows, sections)


def test_notes_explain_the_raw_loop_and_the_cpu_figures_when_measured():
    from fastzk.bench import _notes

    with_raw = " ".join(_notes(limit_suite(), None, {}, False))
    assert "benchmarks/c/raw_rounds.c" in with_raw
    assert "getrusage RUSAGE_SELF" in with_raw
    plain = {k: v for k, v in limit_suite().items() if k[1] != "raw-loop"}
    assert "raw_rounds.c" not in " ".join(_notes(plain, None, {}, False))


def test_min_target():
    from fastzk.bench import Target

    target = Target("min", 1.0)
    assert target.describe() == ">=1"
    assert target.met(None, 1.0) is True
    assert target.met(None, 0.99) is False
    assert target.met(None, None) is None


def test_suite_results_keep_why_a_reference_is_missing():
    data = {"benchmarks": [{
        "name": "test_sync_get_children",
        "stats": {"median": 0.5, "rounds": 5},
        "extra_info": {
            "case": "client.sync_get_children", "impl": "fastzk",
            "ops_per_round": 200, "metrics": {"cpu_us_per_op": 50.0},
            "raw_loop_missing": "no C compiler",
            "c_client_missing": "libzookeeper-mt-dev not installed",
            "spin_on_missing": "the pure-Python core does not spin",
            "partners": [{"impl": "raw-loop", "ops_per_round": 200,
                          "rounds": 5, "median_s": 0.02,
                          "metrics": {"cpu_us_per_op": 9.0}}],
        },
    }]}
    out = suite_results(data)
    fastzk = out[("client.sync_get_children", "fastzk")]
    assert fastzk["raw_loop_missing"] == "no C compiler"
    assert fastzk["c_client_missing"] == "libzookeeper-mt-dev not installed"
    assert fastzk["spin_on_missing"] == "the pure-Python core does not spin"
    assert out[("client.sync_get_children", "raw-loop")]["rate"] == 10000.0
    assert out[("client.sync_get_children", "raw-loop")]["cpu_us_per_op"] == 9.0


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


# -- over TLS ------------------------------------------------------------------

def tls_suite():
    """Suite results of the TLS cases: kazoo and fastzk over TLS and over
    plaintext (alternated in the same rounds)."""
    def entry(rate, cpu):
        return {"rate": rate, "cpu_us_per_op": cpu}

    return {
        ("tls.sync_get_children", "kazoo"): entry(1000.0, 200.0),
        ("tls.sync_get_children", "fastzk"): entry(5000.0, 40.0),
        ("tls.sync_get_children", "kazoo-plain"): entry(2000.0, 150.0),
        ("tls.sync_get_children", "fastzk-plain"): entry(8000.0, 30.0),
        ("tls.pipelined_get_children", "kazoo"): entry(4000.0, 90.0),
        ("tls.pipelined_get_children", "fastzk"): entry(20000.0, 20.0),
        ("tls.pipelined_get_children", "kazoo-plain"): entry(5000.0, 80.0),
        ("tls.pipelined_get_children", "fastzk-plain"): entry(50000.0, 8.0),
        ("tls.lock_failed_attempt", "kazoo"): entry(300.0, 1000.0),
        ("tls.lock_failed_attempt", "fastzk"): entry(6000.0, 45.0),
        ("tls.lock_failed_attempt", "kazoo-plain"): entry(600.0, 800.0),
        ("tls.lock_failed_attempt", "fastzk-plain"): entry(9000.0, 40.0),
    }


def test_tls_rows_put_each_case_beside_its_plaintext_rounds():
    rows = rows_by_key(tls_suite())
    sync = rows["tls.sync_get_children"]
    assert (sync.kazoo, sync.fastzk, sync.ratio) == (1000.0, 5000.0, 5.0)
    assert sync.note == "plaintext, same rounds: kazoo 2,000/s, " \
        "fastzk 8,000/s"
    cpu = rows["tls.sync_get_children.cpu_us"]
    assert (cpu.kazoo, cpu.fastzk, cpu.higher_better) == (200.0, 40.0, False)
    assert cpu.note == "TLS adds: kazoo +50.0 us (plaintext 150.0 us), " \
        "fastzk +10.0 us (plaintext 30.0 us)"
    lock = rows["tls.lock_failed_attempt.cpu_us"]
    assert lock.label == "  CPU per failed attempt (us)"
    assert lock.note.startswith("TLS adds: kazoo +200.0 us")
    assert rows["tls.pipelined_get_children"].ratio == 5.0


def test_tls_ratio_is_judged_against_the_plaintext_ratio():
    rows = rows_by_key(tls_suite())
    # sync: 5x over TLS, 4x over plaintext
    rate = rows["tls.sync_get_children.rate.vs_plain"]
    assert (rate.kazoo, rate.fastzk) == (4.0, 5.0)
    assert (rate.kazoo_text, rate.fastzk_text) == ("plain 4.00x",
                                                   "TLS 5.00x")
    assert rate.target.describe() == ">=plaintext"
    assert rate.verdict() == "better, target met"
    # CPU, times less than kazoo's: 5x over TLS, 5x over plaintext
    assert rows["tls.sync_get_children.cpu.vs_plain"].verdict() == \
        "same, target met"
    # pipelined: 5x over TLS, 10x over plaintext
    assert rows["tls.pipelined_get_children.rate.vs_plain"].verdict() == \
        "WORSE, target MISSED"
    lock = rows["tls.lock_failed_attempt.cpu.vs_plain"]
    assert (lock.kazoo, round(lock.fastzk, 2)) == (20.0, 22.22)


def test_tls_rows_without_the_plaintext_partners_judge_nothing():
    suite = {k: v for k, v in tls_suite().items()
             if k[0] == "tls.sync_get_children" and "plain" not in k[1]}
    rows = rows_by_key(suite)
    assert "tls.pipelined_get_children" not in rows
    assert rows["tls.sync_get_children"].note == \
        "plaintext, same rounds: kazoo n/a, fastzk n/a"
    assert rows["tls.sync_get_children.cpu_us"].note == \
        "TLS adds: kazoo n/a, fastzk n/a"
    vs = rows["tls.sync_get_children.rate.vs_plain"]
    assert vs.kazoo_text == "plain n/a" and vs.verdict() == "-"


def test_tls_section_and_note_only_when_measured():
    from fastzk.bench import _notes, build_rows

    rows, sections = build_rows(tls_suite(), None)
    assert [title for _, title in sections] == [
        "over TLS (client certificates; a plaintext kazoo and fastzk "
        "alternated in the same rounds, same server)"]
    assert len(rows) == 12
    assert "TLS adds" in " ".join(_notes(tls_suite(), None, {}, False))
    assert "TLS" not in " ".join(_notes(limit_suite(), None, {}, False))
    assert all(not r.key.startswith("tls.")
               for r in build_rows(limit_suite(), None)[0])


def test_the_bench_and_the_cases_name_the_plaintext_partners_alike():
    from fastzk import bench

    assert bench.PLAIN_PARTNERS == lib.PLAIN_PARTNERS


def test_tls_cases_run_only_against_a_server_the_benchmark_started():
    assert lib.tls_skip_reason({}) is None
    assert lib.tls_skip_reason({"FASTZK_BENCH_HOSTS": " "}) is None
    assert lib.tls_skip_reason({"FASTZK_BENCH_HOSTS": "127.0.0.1:2181",
                                "FASTZK_BENCH_LOCAL_SERVER": "1"}) is None
    assert lib.tls_skip_reason({"FASTZK_BENCH_HOSTS": "127.0.0.1:2181"}) \
        == lib.TLS_EXTERNAL_REASON
    assert "--hosts" in lib.TLS_EXTERNAL_REASON


def test_the_runner_tells_the_suite_whether_it_started_the_server():
    from fastzk.bench import _env

    local = _env("127.0.0.1:2181", True, local=True)
    assert local["FASTZK_BENCH_LOCAL_SERVER"] == "1"
    assert lib.tls_skip_reason(local) is None
    given = _env("127.0.0.1:2181", True)
    assert "FASTZK_BENCH_LOCAL_SERVER" not in given
    assert lib.tls_skip_reason(given) == lib.TLS_EXTERNAL_REASON


def test_tls_rows_with_hosts_are_skipped_with_the_reason(tmp_path,
                                                         zk_hosts):
    out = tmp_path / "out.json"
    proc = run_fastzk(["bench", "--quick", "--hosts", zk_hosts,
                       "--no-warmup", "--no-fleet", "-k", "tls",
                       "--json", str(out)],
                      installed_copy(tmp_path), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "3/3" in proc.stderr and "SKIPPED" in proc.stderr
    note = "over TLS: not measured (%s)." % lib.TLS_EXTERNAL_REASON
    assert note in proc.stdout.replace("\n", " ")
    import json

    with open(str(out)) as f:
        result = json.load(f)
    assert any(note in n for n in result["notes"])
    assert not any(s["case"].startswith("tls.") for s in result["suite"])
