"""Child process of the client-memory benchmark (bench_client.py).

Usage: python -m fastzk.benchcases._memchild IMPL HOSTS PATH N BATCH

Makes N ``get_children_async(PATH)`` requests in pipelined batches of BATCH
(each batch waited for), after a warm-up, sampling the resident set size;
prints one JSON object.  A fresh process per client, so one client's heap
does not hide or inflate the other's.
"""

import gc
import json
import sys
import time

from fastzk.benchcases import _benchlib as lib


def main(argv):
    impl, hosts, path, n, batch = argv[0], argv[1], argv[2], int(argv[3]), int(argv[4])
    client = lib.make_client(impl, hosts)
    get_children_async = client.get_children_async
    expected = len(client.get_children(path))

    def run(count):
        done = 0
        while done < count:
            k = min(batch, count - done)
            results = [get_children_async(path) for _ in range(k)]
            for r in results:
                r.get()
            done += k
        return done

    warmup = min(max(batch * 10, n // 20), 50000)
    run(warmup)
    gc.collect()
    base = lib.rss_bytes()
    samples = [(0, base)]
    steps = 10
    start = time.perf_counter()
    cpu0 = lib.cpu_seconds()
    done = 0
    for i in range(steps):
        target = n * (i + 1) // steps
        done += run(target - done)
        samples.append((done, lib.rss_bytes()))
    elapsed = time.perf_counter() - start
    cpu = lib.cpu_seconds() - cpu0
    assert len(client.get_children(path)) == expected
    gc.collect()
    end = lib.rss_bytes()
    # Growth over the second half shows whether memory keeps climbing
    # (a leak) or was a one-off (caches, arenas).
    half = samples[steps // 2][1]
    result = {
        "impl": impl,
        "requests": done,
        "warmup": warmup,
        "batch": batch,
        "seconds": elapsed,
        "rate": done / elapsed,
        "cpu_seconds": cpu,
        "rss_base": base,
        "rss_end": end,
        "growth": end - base,
        "growth_second_half": samples[-1][1] - half,
        "samples": samples,
    }
    lib.close_client(client)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
