"""Child process of the asyncio many-sessions case (bench_aio.py).

Usage: python -m fastzk.benchcases._aiosessions IMPL HOSTS N LOOP

Opens N sessions of IMPL (``fastzk``, ``aiozk`` or ``bare``, see
:mod:`fastzk.benchcases._aioclients`) on one event loop (LOOP:
``asyncio`` or ``uvloop``), at most 32 connecting at a time; lets them
idle; prints one JSON object: the seconds to connect all, the resident
set size before and after (one session made and closed first, so that
imports and first-use caches are in the base), and the threads of the
process once all are connected.  A fresh process per client, so one
client's heap neither hides nor inflates another's.
"""

import asyncio
import gc
import json
import sys
import time

from fastzk.benchcases import _aioclients as clients
from fastzk.benchcases import _benchlib as lib

#: Sessions connecting at once: below the server's accept backlog (50 by
#: default), past which a connect waits for the SYN to be sent again (1 s).
CONCURRENT = 32

#: Seconds the sessions idle before the RSS is read.
IDLE_S = 1.0


def threads():
    """The threads of this process (``/proc/self/status``), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


async def run(impl, hosts, n):
    first = await clients.connect(impl, hosts)
    await first.get_children("/")
    await first.close()
    await asyncio.sleep(0.2)
    gc.collect()
    base = lib.rss_bytes()
    gate = asyncio.Semaphore(CONCURRENT)

    async def one():
        async with gate:
            return await clients.connect(impl, hosts)

    start = time.perf_counter()
    made = await asyncio.gather(*(one() for _ in range(n)))
    connect_s = time.perf_counter() - start
    await asyncio.sleep(IDLE_S)
    gc.collect()
    end = lib.rss_bytes()
    count = threads()
    for client in made:
        await client.close()
    return {"impl": impl, "sessions": n, "connect_s": connect_s,
            "rss_base": base, "rss_end": end,
            "rss_per_session": (end - base) / float(n), "threads": count}


def main(argv):
    impl, hosts, n, kind = argv[0], argv[1], int(argv[2]), argv[3]
    loop = clients.new_loop(kind)
    try:
        result = loop.run_until_complete(run(impl, hosts, n))
    finally:
        loop.close()
    result["loop"] = kind
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
