"""Choose the implementation of fastzk's core.

The compiled core (Cython, built from ``src/``) is used unless the
environment variable ``FASTZK_NO_EXTENSIONS`` is set to a non-empty value
other than ``0``, or the extension was not built; then the pure-Python
modules of the same names stand in.  Both implementations expose the same
functions, and the test suite runs against each.  With
``FASTZK_REQUIRE_EXTENSIONS=1`` a missing extension is an ImportError
instead of a silent fallback (``make test`` sets it).
"""

import os
import types
from typing import TYPE_CHECKING, Tuple

__all__ = ["codec", "EXTENSIONS"]


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _load() -> Tuple[types.ModuleType, bool]:
    if not _flag("FASTZK_NO_EXTENSIONS"):
        try:
            from fastzk import _ccodec

            return _ccodec, True
        except ImportError:
            if _flag("FASTZK_REQUIRE_EXTENSIONS"):
                raise
    from fastzk import _codec

    return _codec, False


if TYPE_CHECKING:
    # Both implementations have the API the compiled module's stub
    # describes.
    from fastzk import _ccodec as codec

    EXTENSIONS: bool
else:
    codec, EXTENSIONS = _load()
