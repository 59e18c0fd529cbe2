"""fastzk.kazooface.results: the asynchronous result of the thread client.

:class:`RequestResult` must behave exactly as kazoo's threading
``AsyncResult``, which it replaces for speed: every scenario runs on both.
"""

import threading
import time

import pytest
from kazoo.handlers.threading import (
    AsyncResult,
    KazooTimeoutError,
    SequentialThreadingHandler,
)

from fastzk.kazooface.results import RequestResult, result_factory


@pytest.fixture(params=["kazoo", "fastzk"])
def make(request):
    handler = SequentialThreadingHandler()
    if request.param == "kazoo":
        yield handler, lambda: AsyncResult(handler)
    else:
        yield handler, result_factory(handler)
    if handler.running:
        handler.stop()


def test_the_factory_makes_request_results_of_kazoos_class():
    handler = SequentialThreadingHandler()
    result = result_factory(handler)()
    assert type(result) is RequestResult
    assert isinstance(result, AsyncResult)


def test_a_handler_that_makes_its_own_results_keeps_them():
    class Mine(AsyncResult):
        pass

    class Handler(SequentialThreadingHandler):
        def async_result(self):
            return Mine(self)

    assert type(result_factory(Handler())()) is Mine


def test_value_and_exception(make):
    _, new = make
    result = new()
    assert not result.ready()
    assert result.exception is None
    result.set(42)
    assert result.ready() and result.successful()
    assert result.get() == 42 and result.get_nowait() == 42 and result.value == 42
    failed = new()
    failed.set_exception(ValueError("no"))
    assert failed.ready() and not failed.successful()
    assert isinstance(failed.exception, ValueError)
    with pytest.raises(ValueError, match="no"):
        failed.get()
    with pytest.raises(ValueError, match="no"):
        failed.get(block=False)


def test_timeouts(make):
    _, new = make
    result = new()
    with pytest.raises(KazooTimeoutError):
        result.get_nowait()
    with pytest.raises(KazooTimeoutError):
        result.get(timeout=0)
    start = time.monotonic()
    with pytest.raises(KazooTimeoutError):
        result.get(timeout=0.1)
    assert 0.08 <= time.monotonic() - start < 2
    assert result.wait(0.05) is False
    result.set("late")
    assert result.wait(0.05) is True
    assert result.wait() is True


def test_every_waiting_thread_wakes(make):
    _, new = make
    result = new()
    got = []
    lock = threading.Lock()

    def wait_for_it(how):
        value = result.get() if how == "get" else result.wait(5)
        with lock:
            got.append(value)

    threads = [threading.Thread(target=wait_for_it,
                                args=("get" if i % 2 else "wait",))
               for i in range(10)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    result.set("v")
    for t in threads:
        t.join(5)
        assert not t.is_alive()
    assert sorted(got, key=str) == [True] * 5 + ["v"] * 5


def test_a_timed_out_waiter_does_not_hold_up_the_rest(make):
    _, new = make
    result = new()
    with pytest.raises(KazooTimeoutError):
        result.get(timeout=0.01)
    woke = threading.Event()
    t = threading.Thread(target=lambda: (result.get(), woke.set()))
    t.start()
    time.sleep(0.05)
    result.set(1)
    assert woke.wait(5)
    t.join(5)


def test_callbacks_on_the_handlers_thread_when_it_runs(make):
    handler, new = make
    handler.start()
    result = new()
    seen = []
    done = threading.Event()

    def callback(r):
        seen.append((r.get(), threading.current_thread() is not main))
        done.set()

    main = threading.current_thread()
    result.rawlink(callback)
    result.set("x")
    assert done.wait(5)
    assert seen == [("x", True)]
    # linked after the fact: dispatched at once
    done.clear()
    result.rawlink(lambda r: (seen.append("again"), done.set()))
    assert done.wait(5)
    assert seen[-1] == "again"


def test_callbacks_in_place_when_the_handler_is_stopped(make):
    _, new = make
    result = new()
    seen = []
    # The callback reads the result while set() holds its lock: the lock
    # is re-entrant.
    result.rawlink(lambda r: seen.append(r.get()))
    unlinked = []
    result.rawlink(unlinked.append)
    result.unlink(unlinked.append)
    result.set("y")
    assert seen == ["y"]
    assert unlinked == []
    result.unlink(seen.append)  # after the fact: ignored


def test_the_clients_asynchronous_calls_return_them(zk):
    zk.create("/r", b"v")
    calls = [zk.get_async("/r"), zk.exists_async("/r"),
             zk.get_children_async("/r"), zk.set_async("/r", b"w")]
    for result in calls:
        assert type(result) is RequestResult
        result.get(5)
    assert calls[0].get()[0] == b"v"
    assert calls[2].get() == []
    seen = threading.Event()
    result = zk.get_async("/r")
    result.rawlink(lambda r: seen.set())
    assert result.get(5)[0] == b"w"
    assert seen.wait(5)


def test_a_client_with_a_handler_making_its_own_results_gets_them(zk_hosts):
    from fastzk import KazooClient

    class Mine(AsyncResult):
        pass

    class Handler(SequentialThreadingHandler):
        def async_result(self):
            return Mine(self)

    client = KazooClient(zk_hosts, handler=Handler())
    client.start()
    try:
        result = client.exists_async("/")
        assert type(result) is Mine
        assert result.get(5) is not None
    finally:
        client.stop()
        client.close()
