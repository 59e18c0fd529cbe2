"""A writer in another process: a fastzk client applying batches of
writes, so that the client under test has the CPU (and the GIL) to
itself."""

import time

from fastzk.benchcases._clients import close_client, make_client


def _writer_main(conn, hosts):
    """Body of :class:`Writer`'s process: run pipelined write batches on
    request and report how long each took."""
    from kazoo.exceptions import NoNodeError, NodeExistsError

    client = make_client("fastzk", hosts)
    conn.send("ready")
    try:
        while True:
            msg = conn.recv()
            if msg is None:
                break
            ops, window = msg
            start = time.perf_counter()
            pending = []
            errors = 0
            for op in ops:
                kind, path = op[0], op[1]
                if kind == "set":
                    pending.append(client.set_async(path, op[2]))
                elif kind == "create":
                    pending.append(client.create_async(path, op[2]))
                elif kind == "delete":
                    pending.append(client.delete_async(path))
                if len(pending) >= window:
                    for r in pending:
                        try:
                            r.get()
                        except (NoNodeError, NodeExistsError):
                            errors += 1
                    pending = []
            for r in pending:
                try:
                    r.get()
                except (NoNodeError, NodeExistsError):
                    errors += 1
            conn.send((time.perf_counter() - start, errors))
    finally:
        close_client(client)


class Writer(object):
    """A fastzk client in a separate process that applies batches of
    writes (``("set", path, data)``, ``("create", path, data)``,
    ``("delete", path)``) pipelined, so that the client under test has the
    CPU (and the GIL) to itself."""

    def __init__(self, hosts):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_writer_main, args=(child, hosts),
                                 daemon=True)
        self._proc.start()
        if not self._conn.poll(60) or self._conn.recv() != "ready":
            self.close()
            raise RuntimeError("writer process did not start")

    def start(self, ops, window=1000):
        """Send a batch; returns at once."""
        self._conn.send((list(ops), window))

    def wait(self, timeout=120):
        """Wait for the batch; returns (seconds it took, NoNode/NodeExists
        errors)."""
        if not self._conn.poll(timeout):
            raise RuntimeError("writer process did not finish its batch")
        return self._conn.recv()

    def run(self, ops, window=1000, timeout=120):
        self.start(ops, window)
        return self.wait(timeout)

    def close(self):
        try:
            self._conn.send(None)
        except (OSError, ValueError):
            pass
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
