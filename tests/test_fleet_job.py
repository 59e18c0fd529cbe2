"""The fleet benchmark's simulated job (fastzk/benchcases/fleet.py), on the
real server: the jobs left of an item are counted in its flock file, the
job that ends an item deletes it and puts a fresh one in its place, and a
job that finds the item's flock taken counts a mutual-exclusion
violation."""

import fcntl
import os

import pytest

from fastzk.benchcases import fleet


@pytest.fixture
def session(zk_hosts, tmp_path):
    params = fleet.scenario(quick=True, job_ms=(0.0, 0.0),
                            jobs_per_item=(3, 3))
    s = fleet._Session("fastzk", zk_hosts, "/fleet", str(tmp_path), "w0-0",
                       params, seed=1)
    s.client.ensure_path("/fleet/items/item-1")
    yield s
    s.client.stop()
    s.client.close()


def test_an_item_is_replaced_after_its_last_job(session, tmp_path):
    zxid_before = session.client.exists("/fleet/items/item-1").mzxid
    for expected_left in (2, 1):
        session._job("item-1")
        assert (tmp_path / "item-1").read_text().strip() == str(expected_left)
        stat = session.client.exists("/fleet/items/item-1")
        assert stat.mzxid == zxid_before  # the work wrote nothing
    session._job("item-1")  # the third and last job
    assert (session.jobs, session.items_done) == (3, 1)
    stat = session.client.exists("/fleet/items/item-1")
    assert stat is not None and stat.czxid > zxid_before  # a fresh item
    assert (tmp_path / "item-1").read_text().strip() == "3"
    assert session.violations == 0


def test_a_taken_flock_is_a_violation_and_no_job(session, tmp_path):
    fd = os.open(str(tmp_path / "item-1"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another holder, at the same time
        session._job("item-1")
    finally:
        os.close(fd)
    assert (session.violations, session.jobs) == (1, 0)
    session._job("item-1")
    assert (session.violations, session.jobs) == (1, 1)
