"""The fleet benchmark's worker processes: each runs sessions, one
thread each, looping over the items as the job of kazoo #732 does, and
reports what they counted."""

import os
import random
import sys
import threading
import time

from fastzk.benchcases import _benchlib as lib


class _Session(object):
    """One worker session: a client and the loop of the issue."""

    def __init__(self, impl, hosts, base, flock_dir, name, params, seed):
        self.impl = impl
        options = params.get("fastzk_options") if impl == "fastzk" else None
        self.client = lib.make_client(impl, hosts, **(options or {}))
        self.Lock = lib.lock_class(impl)
        self.items = base + "/items"
        self.locks = base + "/locks"
        self.flock_dir = flock_dir
        self.name = name
        self.params = params
        self.rng = random.Random(seed)
        self.attempts = 0
        self.won = 0
        self.errors = 0
        self.acquire_errors = 0
        self.jobs = 0
        self.items_done = 0
        self.violations = 0
        self.error_kinds = {}

    def _error(self, exc):
        self.errors += 1
        kind = type(exc).__name__
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1

    def loop(self, stop):
        client = self.client
        rng = self.rng
        pause = self.params["pause"]
        while not stop.is_set():
            try:
                children = client.get_children(self.items)
            except Exception as exc:
                self._error(exc)
                stop.wait(0.1)
                continue
            rng.shuffle(children)
            for child in children:
                if stop.is_set():
                    break
                lock = self.Lock(client, self.locks + "/" + child, self.name)
                self.attempts += 1
                try:
                    got = lock.acquire(blocking=False)
                except Exception as exc:
                    self._error(exc)
                    self.acquire_errors += 1
                    continue
                if not got:
                    continue
                self.won += 1
                try:
                    self._job(child)
                except Exception as exc:
                    self._error(exc)
                finally:
                    try:
                        lock.release()
                    except Exception as exc:
                        self._error(exc)
            stop.wait(pause * rng.uniform(0.5, 1.5))

    def _job(self, child):
        """Work on ``child`` while holding its lock: one job of the item.

        As in kazoo #732, the work itself does not touch ZooKeeper; the
        worker that does an item's last job deletes it (and puts a fresh
        one in its slot).  The jobs left of an item are counted in its
        flock file, which only the flock's holder reads or writes.
        """
        import fcntl

        from kazoo.exceptions import NodeExistsError, NoNodeError

        fd = os.open(os.path.join(self.flock_dir, child),
                     os.O_CREAT | os.O_RDWR, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.violations += 1
                return
            try:
                left = self._jobs_left(fd)
                low, high = self.params["job_ms"]
                time.sleep(self.rng.uniform(low, high) / 1000.0)
                self.jobs += 1
                if left > 1:
                    self._set_jobs_left(fd, left - 1)
                    return
                # The item's work is done.  The count stays at 0 until the
                # new item exists, so a holder after a failure here
                # finishes the swap.
                self._set_jobs_left(fd, 0)
                path = self.items + "/" + child
                try:
                    self.client.delete(path)
                    self.items_done += 1
                except NoNodeError:
                    pass
                try:
                    self.client.create(path)
                except NodeExistsError:
                    pass
                self._set_jobs_left(fd, self._new_job_count())
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _new_job_count(self):
        low, high = self.params["jobs_per_item"]
        return self.rng.randint(low, high)

    def _jobs_left(self, fd):
        data = os.pread(fd, 16, 0).strip()
        if not data:  # the item's first job: give it its work
            left = self._new_job_count()
            self._set_jobs_left(fd, left)
            return left
        return int(data)

    @staticmethod
    def _set_jobs_left(fd, left):
        os.pwrite(fd, b"%-15d\n" % left, 0)

    def counts(self):
        return {
            "attempts": self.attempts,
            "won": self.won,
            "errors": self.errors,
            "acquire_errors": self.acquire_errors,
            "jobs": self.jobs,
            "items_done": self.items_done,
            "violations": self.violations,
            "error_kinds": self.error_kinds,
        }


def _worker_process(index, impl, session_hosts, base, flock_dir, params,
                    ready, start, stop, close, results):
    """One worker process: len(session_hosts) sessions, one thread each."""
    _quiet_logs()
    sessions = []
    try:
        for i, hosts in enumerate(session_hosts):
            sessions.append(_Session(impl, hosts, base, flock_dir,
                                     "w%d-%d" % (index, i), params,
                                     index * 1000 + i))
    except Exception as exc:
        results.put({"index": index, "error": "session start failed: %r"
                     % (exc,)})
        return
    # The loops poll their stop flag once per attempt: a process-local
    # Event, set when the coordinator's (a cross-process semaphore, whose
    # every check is a contended syscall) is.
    local_stop = threading.Event()
    threads = [threading.Thread(target=s.loop, args=(local_stop,),
                                daemon=True)
               for s in sessions]
    ready.put(index)
    start.wait()
    cpu0 = lib.cpu_seconds()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    stop.wait()
    local_stop.set()
    for t in threads:
        t.join(120)
    _report_stuck(index, threads)
    cpu = lib.cpu_seconds() - cpu0
    seconds = time.perf_counter() - t0
    total = {"index": index, "cpu_seconds": cpu, "seconds": seconds,
             "stuck_threads": sum(t.is_alive() for t in threads)}
    kinds = {}
    for s in sessions:
        for key, value in s.counts().items():
            if key == "error_kinds":
                for k, v in value.items():
                    kinds[k] = kinds.get(k, 0) + v
            else:
                total[key] = total.get(key, 0) + value
    total["error_kinds"] = kinds
    results.put(total)
    # Sessions stay open until the coordinator has counted the contender
    # nodes (ephemeral nodes vanish with their session).
    close.wait(300)
    for s in sessions:
        try:
            lib.close_client(s.client)
        except Exception:
            pass


def _report_stuck(index, threads):
    """Print where each worker thread that did not stop is (a hang is a
    bug: the stack says which call)."""
    import traceback

    frames = sys._current_frames()
    for t in threads:
        if t.is_alive() and t.ident in frames:
            _log("worker process %d: thread %s did not stop:\n%s" % (
                index, t.name, "".join(traceback.format_stack(frames[t.ident]))))


def _quiet_logs():
    """Connection-drop warnings are expected here (cuts); keep them out of
    the benchmark's output."""
    import logging

    for name in ("kazoo", "fastzk"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()
