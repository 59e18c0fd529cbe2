"""Compare the speed of fastzk's codecs with kazoo's serialisers.

Run from the repository root after ``python setup.py build_ext --inplace``::

    python benchmarks/codec_speed.py [--seconds 0.5]

Prints operations per second for fastzk's pure-Python codec, its Cython
codec and kazoo, and the ratio of each fastzk codec to kazoo.
"""

import argparse
import os
import struct
import sys
import timeit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kazoo.protocol import serialization as kz  # noqa: E402

from fastzk import _codec as py_codec  # noqa: E402

try:
    from fastzk import _ccodec as c_codec
except ImportError:  # not built
    c_codec = None

STAT = struct.pack("!qqqqiiiqiiq", 10, 11, 1700000000000, 1700000000001,
                   3, 4, 0, 0, 100, 50, 12)
HEADER = struct.pack("!iqi", 7, 123456, 0)


def _string(s):
    b = s.encode("utf-8")
    return struct.pack("!i", len(b)) + b


CHILDREN = [("node-%010d" % i) for i in range(50)]
CHILDREN_REPLY = HEADER + struct.pack("!i", 50) + b"".join(map(_string, CHILDREN))
DATA_REPLY = HEADER + struct.pack("!i", 100) + b"x" * 100 + STAT
STAT_REPLY = HEADER + STAT
PATH = "/fastzk/benchmark/some/node"


def kazoo_encode_get_children(path, watch, xid):
    body = kz.GetChildren(path, watch).serialize()
    return struct.pack("!iii", len(body) + 8, xid, 8) + body


# Each case: (statement, names it uses); statements are timed as written
# (no lambda), so the numbers include one Python-level call each.
def cases(codec):
    if codec is None:
        return {
            "encode getChildren": (
                "f(PATH, True, 7)", {"f": kazoo_encode_get_children}),
            "decode getChildren (50)": (
                "f(CHILDREN_REPLY, 16)", {"f": kz.GetChildren.deserialize}),
            "decode getData (100 B)": (
                "f(DATA_REPLY, 16)", {"f": kz.GetData.deserialize}),
            "decode Stat": ("f(STAT_REPLY, 16)", {"f": kz.SetData.deserialize}),
        }
    return {
        "encode getChildren": (
            "f(7, 8, PATH, True)", {"f": codec.encode_path_watch}),
        "decode getChildren (50)": (
            "f(CHILDREN_REPLY, 16)", {"f": codec.decode_children}),
        "decode getData (100 B)": (
            "f(DATA_REPLY, 16)", {"f": codec.decode_data_stat}),
        "decode Stat": ("f(STAT_REPLY, 16)", {"f": codec.decode_stat}),
    }


def rate(case, seconds):
    stmt, names = case
    env = dict(globals())
    env.update(names)
    timer = timeit.Timer(stmt, globals=env)
    number, elapsed = timer.autorange()
    number = max(1, int(number * seconds / max(elapsed, 1e-9)))
    best = min(timer.repeat(repeat=5, number=number))
    return number / best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.3,
                        help="time per measurement (default 0.3)")
    args = parser.parse_args()
    impls = [("kazoo", None), ("fastzk python", py_codec)]
    if c_codec is not None:
        impls.append(("fastzk cython", c_codec))
    else:
        print("fastzk._ccodec is not built; run: python setup.py build_ext "
              "--inplace\n")
    results = {}
    for name, codec in impls:
        for case, spec in cases(codec).items():
            results[(case, name)] = rate(spec, args.seconds)
    names = [name for name, _ in impls]
    print("%-26s" % "ops/s" + "".join("%16s" % n for n in names)
          + "".join("%12s" % ("x " + n.split()[-1]) for n in names[1:]))
    for case in cases(py_codec):
        base = results[(case, "kazoo")]
        print("%-26s" % case
              + "".join("%16s" % ("{:,.0f}".format(results[(case, n)]))
                        for n in names)
              + "".join("%12.1f" % (results[(case, n)] / base)
                        for n in names[1:]))


if __name__ == "__main__":
    main()
