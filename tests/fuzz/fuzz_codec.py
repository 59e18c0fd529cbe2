#!/usr/bin/env python3
"""Coverage-guided fuzzing of fastzk's wire codecs with atheris (by hand).

Not part of the test suite (pytest does not collect this file).  Each input
is split by atheris' FuzzedDataProvider into an offset, a frame and chunk
sizes; then

- every ``decode_*`` function of the pure-Python codec and, when built, of
  the compiled one decodes the frame at offset 0, 16 and the drawn offset,
  as bytes, bytearray and memoryview: the result must be a value or
  ProtocolError, identical in both implementations;
- the input is also fed as a byte stream, in the drawn chunks, to a
  FrameReader of each implementation (with a small and the default
  ``max_frame``): both must return the frames a reference parser finds,
  and raise ProtocolError exactly where it sees a bad length prefix.

Any other exception, a disagreement or a crash is reported by libFuzzer
with the input that caused it (a ``crash-*`` file).  Usage::

    pip install atheris
    python3 setup.py build_ext --inplace          # to fuzz the Cython codec too
    python3 tests/fuzz/fuzz_codec.py -max_total_time=120
    python3 tests/fuzz/fuzz_codec.py -runs=1000000 -jobs=2 CORPUS_DIR

With no corpus directory on the command line a temporary one seeded with
well-formed frames is used.  Set ``FASTZK_NO_EXTENSIONS=1`` to fuzz the
Python codec alone.  The Python codec is instrumented for coverage; the
compiled one is not (build it with clang's ``-fsanitize=fuzzer-no-link``
for native coverage), so it is driven by the Python twin's coverage and
checked against it.
"""

import os
import struct
import sys
import tempfile

import atheris

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", ".."))

with atheris.instrument_imports(include=["fastzk"]):
    from fastzk import _codec
    from fastzk.errors import ProtocolError

IMPLS = [_codec]
if os.environ.get("FASTZK_NO_EXTENSIONS", "") in ("", "0"):
    try:
        from fastzk import _ccodec
    except ImportError as exc:
        sys.exit("fastzk._ccodec is not built (%s): run `python3 setup.py "
                 "build_ext --inplace` or set FASTZK_NO_EXTENSIONS=1" % exc)
    IMPLS.append(_ccodec)

NO_OFFSET = ("decode_reply_header", "decode_connect_response")
DECODERS = ["decode_reply_header", "decode_connect_response", "decode_stat",
            "decode_data_stat", "decode_children", "decode_children_stat",
            "decode_string", "decode_string_stat", "decode_watch_event",
            "decode_multi"]
KINDS = (bytes, bytearray, memoryview)


def outcome(codec, name, frame, offset):
    decode = getattr(codec, name)
    try:
        if name in NO_OFFSET:
            return ("ok", decode(frame))
        return ("ok", decode(frame, offset))
    except ProtocolError:
        return ("error",)


def model(stream, max_frame):
    frames, pos = [], 0
    while len(stream) - pos >= 4:
        (length,) = struct.unpack_from(">i", stream, pos)
        if length < 0 or length > max_frame:
            return frames, True
        if len(stream) - pos - 4 < length:
            break
        frames.append(stream[pos + 4:pos + 4 + length])
        pos += 4 + length
    return frames, False


def read_frames(codec, stream, chunks, max_frame):
    reader = codec.FrameReader(max_frame=max_frame)
    got, start = [], 0
    for size in chunks + [len(stream)]:
        piece = stream[start:start + size]
        start += len(piece)
        reader.feed(piece)
        try:
            frame = reader.next_frame()
            while frame is not None:
                got.append(frame)
                frame = reader.next_frame()
        except ProtocolError:
            return got, True
    return got, False


def TestOneInput(data):
    fdp = atheris.FuzzedDataProvider(data)
    offset = fdp.ConsumeIntInRange(0, 64)
    small = fdp.ConsumeIntInRange(0, 64)
    chunks = [fdp.ConsumeIntInRange(0, 32) for _ in range(fdp.ConsumeIntInRange(0, 6))]
    frame = fdp.ConsumeBytes(fdp.remaining_bytes())

    for name in DECODERS:
        for off in ((None,) if name in NO_OFFSET else (0, 16, offset)):
            results = {(c.IMPLEMENTATION, k.__name__): outcome(c, name, k(frame), off)
                       for c in IMPLS for k in KINDS}
            if len(set(map(repr, results.values()))) != 1:
                raise AssertionError("%s(offset=%r) disagree: %r"
                                     % (name, off, results))

    for max_frame in (small, _codec.DEFAULT_MAX_FRAME):
        expected = model(frame, max_frame)
        for codec in IMPLS:
            got = read_frames(codec, frame, chunks, max_frame)
            if got != expected:
                raise AssertionError("%s FrameReader(max_frame=%d): %r, "
                                     "expected %r" % (codec.IMPLEMENTATION,
                                                      max_frame, got, expected))


def _seeds():
    """Well-formed frames of each record type (the prefix bytes are the
    provider's offset/small/chunk draws)."""
    head = struct.pack(">iqi", 7, 99, 0)
    stat = struct.pack(">qqqqiiiqiiq", *range(11))

    def s(text):
        raw = text.encode()
        return struct.pack(">i", len(raw)) + raw

    bodies = [
        head,
        struct.pack(">iiqi", 0, 4000, 5, 16) + b"p" * 16 + b"\x01",
        head + stat,
        head + s("data") + stat,
        head + struct.pack(">i", 2) + s("a") + s("\u00e9") + stat,
        head + s("/node0000000001") + stat,
        head + struct.pack(">ii", 3, 3) + s("/w"),
        head + struct.pack(">ibi", 1, 0, -1) + s("/c") + struct.pack(">ibi", 5, 0, -1)
        + stat + struct.pack(">ibi", -1, 1, -1),
    ]
    out = []
    for body in bodies:
        out.append(b"\x10\x08\x00" + body)
        out.append(b"\x10\x08\x02\x05\x09" + struct.pack(">i", len(body)) + body)
    return out


def main():
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):
        corpus = tempfile.mkdtemp(prefix="fastzk-fuzz-corpus-")
        for i, seed in enumerate(_seeds()):
            with open(os.path.join(corpus, "seed%02d" % i), "wb") as f:
                f.write(seed)
        argv.append(corpus)
        print("fuzz_codec: seed corpus in %s; implementations: %s"
              % (corpus, ", ".join(c.IMPLEMENTATION for c in IMPLS)),
              file=sys.stderr)
    atheris.Setup(argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
