"""``zk.watch(path)``: persistent watch streams, their reset events after
a reconnect, and the bounded queue."""

import asyncio

from kazoo.protocol.states import EventType, KazooState

from _aio import client, run


async def _wait_state(zk, state, timeout=15):
    async def wait():
        async for s in zk.states():
            if s == state:
                return
    await asyncio.wait_for(wait(), timeout)


@run
async def test_recursive_stream(zk_hosts):
    zk = await client(zk_hosts)
    try:
        await zk.create("/app")
        async with zk.watch("/app", recursive=True) as events:
            await zk.create("/app/a", b"")
            await zk.create("/app/a/b", b"")
            await zk.set("/app/a/b", b"x")
            await zk.delete("/app/a/b")
            got = []
            async for event in events:
                got.append((event.type, event.path))
                if len(got) == 4:
                    break
        assert got == [(EventType.CREATED, "/app/a"),
                       (EventType.CREATED, "/app/a/b"),
                       (EventType.CHANGED, "/app/a/b"),
                       (EventType.DELETED, "/app/a/b")]
        assert len(zk.machine.watches) == 0
    finally:
        await zk.stop()


@run
async def test_plain_stream_sees_children_and_data(zk_hosts):
    zk = await client(zk_hosts)
    try:
        await zk.create("/n")
        async with zk.watch("/n") as events:
            await zk.set("/n", b"1")
            await zk.create("/n/c")
            first = await events.get(10)
            second = await events.get(10)
        assert (first.type, second.type) == (EventType.CHANGED,
                                             EventType.CHILD)
    finally:
        await zk.stop()


@run
async def test_reset_event_after_reconnect(zk_proxy_hosts, proxy, writer):
    zk = await client(zk_proxy_hosts)
    try:
        await zk.create("/app")
        async with zk.watch("/app", recursive=True) as events:
            proxy.reject(True)
            proxy.cut()
            await _wait_state(zk, KazooState.SUSPENDED)
            writer.create("/app/while-away")
            proxy.reject(False)
            await _wait_state(zk, KazooState.CONNECTED)
            reset = await events.get(10)
            assert reset.type == EventType.NONE and reset.path == "/app"
            # Still watching on the restored connection.
            await zk.create("/app/after")
            event = await events.get(10)
            assert (event.type, event.path) == (EventType.CREATED,
                                                "/app/after")
    finally:
        await zk.stop()


@run
async def test_overflow_becomes_one_reset(zk_hosts):
    zk = await client(zk_hosts)
    try:
        await zk.create("/o")
        async with zk.watch("/o", recursive=True, maxsize=4) as events:
            await asyncio.gather(*(zk.create("/o/%d" % i) for i in range(10)))
            await zk.sync("/o")
            await asyncio.sleep(0.2)
            got = []
            while not events._queue.empty():
                got.append(await events.get(1))
        assert any(e.type == EventType.NONE for e in got)
        assert len(got) <= 4
    finally:
        await zk.stop()


@run
async def test_stream_survives_session_expiry(zk_hosts, zk_server):
    from fastzk.testing.zkserver import expire_session

    zk = await client(zk_hosts, timeout=4.0)
    try:
        await zk.create("/e")
        async with zk.watch("/e", recursive=True) as events:
            session_id, passwd = zk.client_id
            expire_session(zk_server.address, session_id, passwd)
            await _wait_state(zk, KazooState.LOST)
            await _wait_state(zk, KazooState.CONNECTED)
            reset = await events.get(10)
            assert reset.type == EventType.NONE
            await zk.create("/e/new")
            event = await events.get(10)
            assert (event.type, event.path) == (EventType.CREATED, "/e/new")
    finally:
        await zk.stop()


@run
async def test_data_and_children_watch(zk_hosts):
    zk = await client(zk_hosts)
    try:
        datas = asyncio.Queue()
        kids = asyncio.Queue()

        def on_data(data, stat):
            datas.put_nowait(data)

        async def on_children(children):
            kids.put_nowait(sorted(children))

        dw = zk.DataWatch("/dw", on_data)
        cw = zk.ChildrenWatch("/dw", on_children)
        assert await asyncio.wait_for(datas.get(), 10) is None
        assert await asyncio.wait_for(kids.get(), 10) == []
        await zk.create("/dw", b"v1")
        assert await asyncio.wait_for(datas.get(), 10) == b"v1"
        await zk.create("/dw/a")
        assert await asyncio.wait_for(kids.get(), 10) == ["a"]
        await zk.set("/dw", b"v2")
        assert await asyncio.wait_for(datas.get(), 10) == b"v2"
        await zk.delete("/dw", recursive=True)
        assert await asyncio.wait_for(datas.get(), 10) is None
        assert await asyncio.wait_for(kids.get(), 10) == []
        await dw.stop()
        await cw.stop()
    finally:
        await zk.stop()
