"""The benchmark runner's plumbing (no server): alternated rounds and how
their figures reach the table."""

import os
import sys

from fastzk.bench import suite_results

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "benchmarks"))

import _benchlib as lib  # noqa: E402


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
    import fleet

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
