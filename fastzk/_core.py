"""Choose the implementation of fastzk's core.

The compiled core (Cython, built from ``src/``) is used unless the
environment variable ``FASTZK_NO_EXTENSIONS`` is set to a non-empty value
other than ``0``, or the extension was not built; then the pure-Python
modules of the same names stand in.  Both implementations expose the same
functions, and the test suite runs against each.
"""

import os

__all__ = ["codec", "EXTENSIONS"]


def _wanted():
    return os.environ.get("FASTZK_NO_EXTENSIONS", "") in ("", "0")


codec = None
EXTENSIONS = False

if _wanted():
    try:
        from fastzk import _ccodec as codec

        EXTENSIONS = True
    except ImportError:
        if os.environ.get("FASTZK_REQUIRE_EXTENSIONS", "") not in ("", "0"):
            raise

if codec is None:
    from fastzk import _codec as codec
