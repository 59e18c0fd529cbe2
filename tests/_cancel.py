"""Cancel a coroutine at exactly its k-th suspension point.

``await cancel_at(coro, k)`` runs ``coro`` in the current task and, when
``coro`` suspends for the k-th time (an ``await`` on a future that is not
done yet, or a bare yield such as ``asyncio.sleep(0)``), cancels it there
the way ``Task.cancel()`` does: the awaited future is cancelled and the
coroutine receives CancelledError at that await.  Counting from k = 1
until a run finishes without being cancelled covers every await the
coroutine passes through, whatever the timing of the replies it waits
for.
"""

import asyncio


class CancelAt:
    """An awaitable running ``coro`` and cancelling it at suspension
    ``k`` (1-based).  After it ends, :attr:`cancelled` says whether the
    cancellation happened (False: ``coro`` finished in fewer
    suspensions)."""

    def __init__(self, coro, k):
        self.coro = coro
        self.k = k
        self.cancelled = False

    def __await__(self):
        coro = self.coro
        suspensions = 0
        value = None
        error = None
        while True:
            try:
                if error is not None:
                    yielded = coro.throw(error)
                else:
                    yielded = coro.send(value)
            except StopIteration as stop:
                return stop.value
            value = error = None
            suspensions += 1
            if suspensions == self.k:
                self.cancelled = True
                if yielded is None:
                    # A bare yield: Task.cancel() throws at the next step.
                    error = asyncio.CancelledError()
                    continue
                # Task.cancel() cancels the future the task waits on; the
                # coroutine then gets CancelledError from that await.
                yielded.cancel()
            try:
                value = yield yielded
            except BaseException as exc:
                error = exc


async def every_cancellation(make, check, limit=200):
    """For k = 1, 2, ...: run ``await make()`` (a coroutine function
    returning a fresh coroutine, after any set-up it needs) cancelled at
    its k-th suspension, then ``await check(k, outcome)`` where outcome is
    the result, or the exception it raised (CancelledError when the
    cancellation took).  Ends at the first k the
    coroutine finishes before; returns that k (the number of suspension
    points covered plus one)."""
    for k in range(1, limit + 1):
        runner = CancelAt(await make(), k)
        try:
            outcome = await runner
        except (Exception, asyncio.CancelledError) as exc:
            outcome = exc
        await check(k, outcome)
        if not runner.cancelled:
            return k
    raise AssertionError("still suspending after %d awaits" % limit)
