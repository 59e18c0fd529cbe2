"""Reply batching of the asyncio driver: while a pipelined burst is in
flight and a read brought only a few replies, reading pauses for a moment
so that the next read takes many (one wake-up of the loop instead of one
per reply).

The decision is checked first on a :class:`~fastzk.aio.wire.Wire` fed
hand-built frames (no server), then on a real server: bursts, a cut in
the middle of a paused burst, and the argument's checks.
"""

import asyncio
import struct
from types import SimpleNamespace

import pytest
from kazoo.exceptions import ConnectionLoss

from fastzk.aio import AsyncClient
from fastzk.aio.wire import Wire
from fastzk.drivers.batching import MAX_FRAMES as BATCH_MAX_FRAMES
from fastzk.drivers.batching import MIN_PENDING as BATCH_MIN_PENDING
from fastzk.protocol import constants as zk
from fastzk.protocol.session import R_CHILDREN, Request, SessionMachine

from _aio import client, run
from _sessionlib import Result, header

# -- the decision, on frames built by hand -----------------------------------


class RecordingTransport(object):
    """What the Wire does to its transport, in order."""

    def __init__(self):
        self.calls = []

    def pause_reading(self):
        self.calls.append("pause")

    def resume_reading(self):
        self.calls.append("resume")

    def write(self, data):
        pass

    def abort(self):
        self.calls.append("abort")


def _children_reply(xid):
    body = header(xid, 5) + struct.pack(">i", 0)
    return struct.pack(">i", len(body)) + body


def _wire(loop, in_flight, batching=0.001):
    identity = SimpleNamespace(last_zxid=0, _session_id=None,
                               _session_passwd=None, _protocol_version=None)
    machine = SessionMachine(identity, 30000,
                             dispatch_watch=lambda *event: None)
    results = []
    for _ in range(in_flight):
        result = Result()
        results.append(result)
        machine.send(Request(zk.GET_CHILDREN, None, R_CHILDREN, result, "/b"))
    dropped = []
    owner = SimpleNamespace(machine=machine, loop=loop,
                            _drop=lambda wire, error: dropped.append(error))
    wire = Wire(owner, batching)  # type: ignore[arg-type]
    wire.handshake = None
    transport = RecordingTransport()
    wire.connection_made(transport)  # type: ignore[arg-type]
    return wire, transport, results, dropped


@run
async def test_a_small_read_during_a_burst_pauses_reading_briefly():
    loop = asyncio.get_running_loop()
    wire, transport, results, _ = _wire(loop, BATCH_MIN_PENDING + 2)
    wire.data_received(_children_reply(1))
    # One reply, with BATCH_MIN_PENDING + 1 outstanding: pause.
    assert transport.calls == ["pause"]
    assert results[0].value == []
    await asyncio.sleep(0.05)
    assert transport.calls == ["pause", "resume"]


@run
async def test_no_pause_for_a_full_read_a_short_burst_or_no_batching():
    loop = asyncio.get_running_loop()
    # A read carrying BATCH_MAX_FRAMES replies is worth its wake-up.
    wire, transport, results, _ = _wire(
        loop, BATCH_MIN_PENDING + BATCH_MAX_FRAMES)
    wire.data_received(b"".join(_children_reply(xid)
                                for xid in range(1, BATCH_MAX_FRAMES + 1)))
    assert transport.calls == []
    assert all(r.value == [] for r in results[:BATCH_MAX_FRAMES])
    # Fewer than BATCH_MIN_PENDING outstanding after the read.
    wire, transport, _, _ = _wire(loop, BATCH_MIN_PENDING)
    wire.data_received(_children_reply(1))
    assert transport.calls == []
    # reply_batching=0.
    wire, transport, _, _ = _wire(loop, 2 * BATCH_MIN_PENDING, batching=0)
    wire.data_received(_children_reply(1))
    assert transport.calls == []
    await asyncio.sleep(0.01)
    assert transport.calls == []


@run
async def test_a_connection_closed_while_paused_is_not_resumed():
    loop = asyncio.get_running_loop()
    wire, transport, _, _ = _wire(loop, 2 * BATCH_MIN_PENDING)
    wire.data_received(_children_reply(1))
    assert transport.calls == ["pause"]
    wire.connection_lost(None)
    await asyncio.sleep(0.05)
    assert transport.calls == ["pause"]


@run
async def test_a_broken_frame_drops_the_connection_without_pausing():
    loop = asyncio.get_running_loop()
    wire, transport, results, dropped = _wire(loop, 2 * BATCH_MIN_PENDING)
    wire.data_received(_children_reply(7))  # the first request's xid is 1
    assert len(dropped) == 1 and transport.calls == []
    assert isinstance(results[0].error, ConnectionLoss)


# -- on a real server ---------------------------------------------------------


def _count_resumes(monkeypatch):
    resumes = []
    resume = Wire._resume

    def counting(self):
        resumes.append(self)
        resume(self)

    monkeypatch.setattr(Wire, "_resume", counting)
    return resumes


@run
async def test_gathered_bursts_are_batched_and_complete_in_order(
        zk_hosts, monkeypatch):
    resumes = _count_resumes(monkeypatch)
    zk = await client(zk_hosts)
    try:
        await asyncio.gather(*(zk.create("/b/n%d" % i, b"%d" % i,
                                         makepath=True) for i in range(20)))
        # A burst of 2,000 is read in many reads; the first comes back
        # with the server's first replies, so it pauses.  Up to five
        # bursts, against a machine that happened to read every burst in
        # large pieces.
        for _ in range(5):
            replies = await asyncio.gather(*(zk.get_async("/b/n%d" % (i % 20))
                                             for i in range(2000)))
            assert [data for data, _ in replies] == [
                b"%d" % (i % 20) for i in range(2000)]
            if resumes:
                break
        assert resumes, "no read of five bursts was batched"
        # The sequential path never waits.
        before = len(resumes)
        for _ in range(200):
            await zk.get_children("/b")
        assert len(resumes) == before
    finally:
        await zk.stop()


@run
async def test_no_batching_when_turned_off(zk_hosts, monkeypatch):
    resumes = _count_resumes(monkeypatch)
    zk = await client(zk_hosts, reply_batching=0)
    try:
        await zk.ensure_path("/b")
        for _ in range(3):
            names = await asyncio.gather(*(zk.get_children_async("/b")
                                           for _ in range(2000)))
            assert names == [[]] * 2000
        assert resumes == []
    finally:
        await zk.stop()


@run
async def test_a_cut_during_a_batched_burst_fails_it_and_the_next_works(
        zk_proxy_hosts, proxy):
    loop = asyncio.get_running_loop()
    errors = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))
    # A long pause: the cut lands while reading is paused.
    zk = await client(zk_proxy_hosts, reply_batching=0.2)
    try:
        await zk.ensure_path("/b")
        futures = [zk.get_children_async("/b") for _ in range(10000)]
        while len(zk.machine.pending) == 10000:
            await asyncio.sleep(0.005)
        proxy.cut()  # long before the last of 10,000 replies
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        lost = [o for o in outcomes if isinstance(o, BaseException)]
        assert lost and all(isinstance(o, ConnectionLoss) for o in lost)
        assert all(o == [] for o in outcomes
                   if not isinstance(o, BaseException))
        names = await asyncio.gather(*(zk.get_children_async("/b")
                                       for _ in range(500)))
        assert names == [[]] * 500
        await asyncio.sleep(0.3)  # the paused wire's timer fires
        assert errors == []
    finally:
        await zk.stop()


@pytest.mark.parametrize("value, error", [
    (-0.001, ValueError), (1.5, ValueError), (float("nan"), ValueError),
    ("0.001", TypeError), (True, TypeError), (None, TypeError)])
def test_reply_batching_is_checked(value, error):
    with pytest.raises(error):
        AsyncClient("127.0.0.1:2181", reply_batching=value)


def test_reply_batching_defaults_to_a_millisecond():
    assert AsyncClient("127.0.0.1:2181").reply_batching == 0.001
    assert AsyncClient("127.0.0.1:2181", reply_batching=0).reply_batching == 0
