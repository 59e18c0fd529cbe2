"""The asyncio TreeCache on a real ZooKeeper: the first load, the events
of changes, convergence with the server, a session lost and found, and
close."""

import asyncio

import pytest
from kazoo.exceptions import KazooException, NoWatcherError
from kazoo.recipe.cache import TreeEvent

from fastzk.protocol import watches
from _aio import client, run
from _watchlib import answer_add_watch_unimplemented, server_watches

ROOT = "/tree"
MODES = {"persistent": None, "oneshot": False}


@pytest.fixture(params=sorted(MODES))
def mode(request):
    """The cache tests run on a persistent recursive watch and on the
    one-shot fallback."""
    return request.param


def _cache(zk, mode):
    cache = zk.TreeCache(ROOT, use_persistent_watch=MODES[mode])
    assert cache.uses_persistent_watch == (mode == "persistent")
    return cache


async def _server_view(zk, path=ROOT):
    """{path: (data, child names)} of the subtree, read from the server."""
    data, _ = await zk.get(path)
    names = await zk.get_children(path)
    view = {path: (data, frozenset(names))}
    for name in names:
        view.update(await _server_view(zk, path + "/" + name))
    return view


def _cache_view(cache, path=ROOT):
    node = cache.get_data(path)
    if node is None:
        return {}
    names = cache.get_children(path)
    view = {path: (node.data, names)}
    for name in names:
        view.update(_cache_view(cache, path + "/" + name))
    return view


async def _converged(zk, cache, timeout=10):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        want = await _server_view(zk)
        if _cache_view(cache) == want or loop.time() > end:
            return want
        await asyncio.sleep(0.05)


async def _until(predicate, timeout=10):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate() and loop.time() < end:
        await asyncio.sleep(0.02)
    return predicate()


@run
async def test_first_load_then_events(zk_hosts, mode):
    zk = await client(zk_hosts)
    cache = _cache(zk, mode)
    try:
        await zk.create(ROOT + "/a/b", b"ab", makepath=True)
        await zk.create(ROOT + "/c", b"c")
        events = []
        cache.listen(events.append)
        seen_async = []

        @cache.listen
        async def async_listener(event):
            seen_async.append(event.event_type)

        await cache.start()
        with pytest.raises(KazooException):
            await cache.start()
        await asyncio.wait_for(cache.initialized.wait(), 10)
        types = [e.event_type for e in events]
        assert types[-1] == TreeEvent.INITIALIZED
        added = sorted(e.event_data.path for e in events[:-1])
        assert added == [ROOT, ROOT + "/a", ROOT + "/a/b", ROOT + "/c"]
        assert set(types[:-1]) == {TreeEvent.NODE_ADDED}
        assert cache.get_data(ROOT + "/a/b").data == b"ab"
        assert cache.get_children(ROOT) == frozenset(["a", "c"])
        assert cache.get_children(ROOT + "/missing") is None
        with pytest.raises(ValueError):
            cache.get_data("/elsewhere")
        del events[:]
        await zk.create(ROOT + "/a/new", b"n")
        await zk.set(ROOT + "/c", b"c2")
        await zk.delete(ROOT + "/a/b")
        assert await _until(lambda: len(events) >= 3)
        assert [(e.event_type, e.event_data.path) for e in events[:3]] == [
            (TreeEvent.NODE_ADDED, ROOT + "/a/new"),
            (TreeEvent.NODE_UPDATED, ROOT + "/c"),
            (TreeEvent.NODE_REMOVED, ROOT + "/a/b")]
        assert cache.get_data(ROOT + "/c").data == b"c2"
        assert cache.get_children(ROOT + "/a") == frozenset(["new"])
        assert await _until(lambda: len(seen_async) >= 7)
        assert seen_async[4] == TreeEvent.INITIALIZED
        await cache.close()
        assert cache.get_data(ROOT) is None
        del events[:]
        await zk.create(ROOT + "/after-close")
        await asyncio.sleep(0.3)
        assert events == []
        with pytest.raises(KazooException):
            await cache.start()
    finally:
        await cache.close()
        await zk.stop()


@run
async def test_converges_under_many_pipelined_changes(zk_hosts, mode):
    zk = await client(zk_hosts)
    writer = await client(zk_hosts)
    cache = _cache(zk, mode)
    try:
        await zk.ensure_path(ROOT)
        await cache.start()
        await asyncio.wait_for(cache.initialized.wait(), 10)
        writes = []
        for i in range(30):
            writes.append(writer.create("%s/n%d" % (ROOT, i), b"%d" % i))
        await asyncio.gather(*writes)
        await asyncio.gather(*(writer.create("%s/n%d/k" % (ROOT, i))
                               for i in range(0, 30, 3)))
        await asyncio.gather(*(writer.set("%s/n%d" % (ROOT, i), b"x")
                               for i in range(0, 30, 2)))
        await asyncio.gather(*(writer.delete("%s/n%d" % (ROOT, i),
                                             recursive=True)
                               for i in range(0, 30, 5)))
        want = await _converged(zk, cache)
        assert _cache_view(cache) == want
        assert len(want) == 1 + 24 + 8
        await cache.close()
    finally:
        await cache.close()
        await zk.stop()
        await writer.stop()


@run
async def test_session_lost_then_resynced(zk_hosts, zk_server, mode):
    from fastzk.testing.zkserver import expire_session

    zk = await client(zk_hosts, timeout=4.0)
    writer = await client(zk_hosts)
    cache = _cache(zk, mode)
    try:
        await zk.create(ROOT + "/old", b"o", makepath=True)
        events = []
        cache.listen(events.append)
        await cache.start()
        await asyncio.wait_for(cache.initialized.wait(), 10)
        session_id, passwd = zk.client_id
        expire_session(zk_server.address, session_id, passwd)
        await writer.delete(ROOT + "/old")
        await writer.create(ROOT + "/while-lost", b"w")
        types = lambda: [e.event_type for e in events]  # noqa: E731
        assert await _until(lambda: TreeEvent.CONNECTION_LOST in types(),
                            15)
        want = await _converged(zk, cache, 15)
        assert _cache_view(cache) == want
        assert set(want) == {ROOT, ROOT + "/while-lost"}
        # The new session's watch reports changes again.
        await writer.set(ROOT + "/while-lost", b"w2")
        assert await _until(lambda: cache.get_data(
            ROOT + "/while-lost").data == b"w2")
        await cache.close()
    finally:
        await cache.close()
        await zk.stop()
        await writer.stop()


@run
async def test_closing_a_cache_keeps_a_shared_watch(zk_hosts):
    # ZooKeeper keeps one recursive watch per path and session: a watch
    # stream and a cache on one root share it, and closing either must
    # leave it to the other.
    zk = await client(zk_hosts)
    try:
        await zk.ensure_path(ROOT)
        cache = zk.TreeCache(ROOT)
        await cache.start()
        async with zk.watch(ROOT, recursive=True) as events:
            await cache.close()
            await zk.create(ROOT + "/after-close", b"")
            event = await events.get(timeout=5)
            assert event.path == ROOT + "/after-close"
        cache = zk.TreeCache(ROOT)
        await cache.start()
        await asyncio.wait_for(cache.initialized.wait(), 10)
        async with zk.watch(ROOT, recursive=True):
            pass
        await zk.create(ROOT + "/after-stream", b"x")
        assert await _until(
            lambda: cache.get_data(ROOT + "/after-stream") is not None)
        await cache.close()
        # The last user gone, the server-side watch goes too.
        assert not zk.machine.watches.paths()[watches.RECURSIVE]
        with pytest.raises(NoWatcherError):
            await zk.remove_all_watches(ROOT, watches.WatcherType.ANY)
    finally:
        await zk.delete(ROOT, recursive=True)
        await zk.stop()


@run
async def test_close_leaves_no_watch_behind(zk_hosts, zk_server, mode):
    zk = await client(zk_hosts)
    cache = _cache(zk, mode)
    try:
        for path in (ROOT + "/a/x", ROOT + "/b"):
            await zk.create(path, b"", makepath=True)
        await cache.start()
        await asyncio.wait_for(cache.initialized.wait(), 10)
        await zk.create(ROOT + "/a/y")
        await zk.delete(ROOT + "/b")
        assert await _until(lambda: cache.get_data(ROOT + "/a/y") is not None
                            and cache.get_data(ROOT + "/b") is None)
        assert server_watches(zk_server, zk.client_id[0])
        await cache.close()
        assert zk.machine.watches.paths() == ([], [], [], [], [])
        assert not server_watches(zk_server, zk.client_id[0])
    finally:
        await cache.close()
        await zk.delete(ROOT, recursive=True)
        await zk.stop()


@run
async def test_falls_back_to_one_shot_watches_without_add_watch(
        zk_proxy_hosts, proxy, zk_server):
    zk = await client(zk_proxy_hosts)
    cache = zk.TreeCache(ROOT)
    try:
        await zk.create(ROOT + "/a", b"a", makepath=True)
        await zk.create(ROOT + "/b", b"b")
        hook = answer_add_watch_unimplemented(proxy)
        events = []
        cache.listen(events.append)
        await cache.start()
        await asyncio.wait_for(cache.initialized.wait(), 10)
        assert hook.fired.is_set()
        assert not cache.uses_persistent_watch
        assert not zk.machine.watches.paths()[watches.RECURSIVE]
        del events[:]
        await zk.create(ROOT + "/a/new", b"n")
        await zk.set(ROOT + "/a", b"a2")
        await zk.delete(ROOT + "/b")
        assert await _until(lambda: len(events) >= 3)
        assert {(e.event_type, e.event_data.path) for e in events} == {
            (TreeEvent.NODE_ADDED, ROOT + "/a/new"),
            (TreeEvent.NODE_UPDATED, ROOT + "/a"),
            (TreeEvent.NODE_REMOVED, ROOT + "/b")}
        assert await _converged(zk, cache) == _cache_view(cache)
        await cache.close()
        assert not server_watches(zk_server, zk.client_id[0])
    finally:
        await cache.close()
        await zk.delete(ROOT, recursive=True)
        await zk.stop()
