"""The event dispatcher: user callbacks, in order, off the I/O path.

The thread that reads the socket only appends ``(func, args)`` to a deque;
one dispatcher thread per client drains it in batches and makes the calls.
Appending costs no lock and no wake-up while the dispatcher is busy, so a
burst of watch events costs the reader almost nothing, and a slow callback
delays only the callbacks behind it, never the connection or its pings.
Watch events and state changes share the queue, so a listener sees them in
the order the connection saw them.

No thread is hard-wired below this module: an asyncio front end can drain
the same kind of queue from its loop instead.
"""

import logging
import threading
from collections import deque
from typing import Any, Callable, Deque, Optional, Tuple

__all__ = ["Dispatcher"]

log = logging.getLogger("fastzk.dispatch")


class Dispatcher(object):
    """Runs queued calls on its own thread, in the order they were queued."""

    def __init__(self, name: str = "fastzk-events") -> None:
        self._name = name
        self._calls: Deque[Tuple[Callable[..., Any], Tuple[Any, ...]]] = \
            deque()
        self._wakeup = threading.Condition(threading.Lock())
        self._waiting = False
        self._running = False
        self._thread: Optional[threading.Thread] = None

    @property
    def running(self) -> bool:
        """Whether the dispatcher thread is running."""
        return self._running

    def start(self) -> None:
        """Start the dispatcher thread (no-op when running)."""
        with self._wakeup:
            if self._running:
                return
            self._running = True
        self._thread = threading.Thread(target=self._run, name=self._name,
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: Optional[float] = 10.0) -> None:
        """Run what is queued, then stop the thread."""
        with self._wakeup:
            if not self._running:
                return
            self._running = False
            self._wakeup.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    def put(self, func: Callable[..., Any], *args: Any) -> None:
        """Queue ``func(*args)``.  Callable from any thread; never blocks
        on the dispatcher's work."""
        self._calls.append((func, args))
        if self._waiting:
            with self._wakeup:
                self._wakeup.notify()

    def _run(self) -> None:
        calls = self._calls
        wakeup = self._wakeup
        while True:
            with wakeup:
                self._waiting = True
                # Checked after announcing the wait: a put() that found
                # _waiting False appended before this check.
                while not calls and self._running:
                    wakeup.wait()
                self._waiting = False
                if not calls and not self._running:
                    return
            while calls:
                func, args = calls.popleft()
                try:
                    func(*args)
                except Exception:
                    log.exception("Error in watch or listener callback %r",
                                  func)
                # Hold no reference to the last callback while idle: it may
                # keep a closed recipe (and what it references) alive.
                del func, args
