#!/usr/bin/env python3
"""Coverage-guided runs of the codec fuzzer with atheris (by hand).

The fuzzer itself is ``check_fuzzed`` and its input strategy
``FUZZ_CASES`` in tests/test_codec.py, which the suite runs as
``test_fuzzed_frames`` under hypothesis.  This driver hands the same
hypothesis test to libFuzzer (through hypothesis' ``fuzz_one_input``) for
long runs; not part of the test suite (pytest does not collect it).  Any
exception other than the check's, a disagreement between the pure-Python
and compiled codecs or a crash is reported by libFuzzer with the input
that caused it (a ``crash-*`` file).  Usage::

    pip install atheris
    python3 setup.py build_ext --inplace          # to fuzz the Cython codec too
    python3 tests/fuzz/fuzz_codec.py -max_total_time=120
    python3 tests/fuzz/fuzz_codec.py -runs=1000000 -jobs=2 CORPUS_DIR

Set ``FASTZK_NO_EXTENSIONS=1`` to fuzz the Python codec alone.  The Python
codec is instrumented for coverage; the compiled one is not (build it with
clang's ``-fsanitize=fuzzer-no-link`` for native coverage), so it is
driven by the Python twin's coverage and checked against it.
"""

import os
import sys

import atheris
from hypothesis import given, settings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, ".."), os.path.join(HERE, "..", "..")]

with atheris.instrument_imports(include=["fastzk"]):
    import test_codec


def main():
    impls = [test_codec._load(name) for name in test_codec.IMPLEMENTATIONS]

    @settings(database=None, deadline=None)
    @given(case=test_codec.FUZZ_CASES)
    def fuzz(case):
        test_codec.check_fuzzed(impls, *case)

    print("fuzz_codec: implementations: %s"
          % ", ".join(c.IMPLEMENTATION for c in impls), file=sys.stderr)
    atheris.Setup(sys.argv, fuzz.hypothesis.fuzz_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
