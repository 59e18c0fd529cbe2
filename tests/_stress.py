"""Helpers shared by test_hostile.py and test_load.py: resource gauges,
calls with a time limit, and log records that do not pin memory."""

import contextlib
import ctypes
import gc
import logging
import os
import sys
import threading
import time
import traceback


def rss_kib():
    """Resident set size of this process, from /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


try:
    _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):  # not glibc
    _malloc_trim = None


def trim():
    """Collect garbage and give the C heap's free memory back to the system
    (glibc's malloc_trim), so that RSS measures memory in use rather than
    what the allocator keeps after a peak (hundreds of threads each
    allocating 256 KiB reader buffers fragment it)."""
    gc.collect()
    if _malloc_trim is not None:
        _malloc_trim(0)


def fd_count():
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def plain_threads():
    """Live threads other than threading.Timer ones (the engine's expiry
    clocks, which end by themselves after a session timeout)."""
    return sum(1 for t in threading.enumerate()
               if not isinstance(t, threading.Timer))


def settle_timers(timeout):
    """Wait (at most ``timeout`` s) for every threading.Timer to end."""
    deadline = time.monotonic() + timeout
    while any(isinstance(t, threading.Timer) for t in threading.enumerate()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def gauges():
    """(RSS KiB, threads, open fds, allocated Python memory blocks) after a
    full collection and a trim of the C heap."""
    trim()
    return (rss_kib(), threading.active_count(), fd_count(),
            sys.getallocatedblocks())


def thread_stacks(threads=None):
    """The current stack of each thread (all by default), as text."""
    frames = sys._current_frames()
    out = []
    for thread in threads or threading.enumerate():
        frame = frames.get(thread.ident)
        if frame is not None:
            out.append("--- %s\n%s" % (thread.name,
                                       "".join(traceback.format_stack(frame))))
    return "\n".join(out)


def bounded(fn, timeout, what):
    """Run ``fn()`` in a thread; its value or exception, or AssertionError
    (with the stuck thread's stack) if it has not returned in ``timeout``."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name="bounded " + what, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError("%s did not return within %.0f s (hang); it is "
                             "stuck at:\n%s" % (what, timeout,
                                                thread_stacks([thread])))
    if "error" in box:
        raise box["error"]
    return box["value"]


class _FlattenRecord(logging.Filter):
    """Turn a record's arguments into its message.

    pytest's log capture keeps every record of a test.  The engine logs the
    exception of each dropped connection as an argument; with the
    pure-Python codec its traceback holds the frames of the reading thread,
    the connection's FrameReader (256 KiB) included, so the kept records
    would look like a leak of 256 KiB per dropped connection."""

    def filter(self, record):
        record.msg = record.getMessage()
        record.args = ()
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return True


@contextlib.contextmanager
def flat_log_records():
    """While active, records of fastzk's and kazoo's loggers keep no
    references to their arguments (see _FlattenRecord)."""
    # a filter applies to its own logger's records only, not to children's
    names = {"kazoo.client", "fastzk.engine", "fastzk.client"} | {
        name for name in logging.root.manager.loggerDict
        if name.split(".")[0] in ("fastzk", "kazoo")}
    loggers = [logging.getLogger(name) for name in sorted(names)]
    flatten = _FlattenRecord()
    for logger in loggers:
        logger.addFilter(flatten)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(flatten)
