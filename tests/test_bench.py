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
