"""The reference model of frame splitting, shared by the codec and
hostile-input tests."""

import struct


def model_frames(stream, max_frame):
    """The frames a FrameReader must return for ``stream``, and whether it
    must then raise ProtocolError (a length prefix that is negative or over
    ``max_frame``): ``(frames, error)``."""
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
