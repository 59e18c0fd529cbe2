"""The package's version: the one number in ``pyproject.toml``.

An installed fastzk reads it from its distribution's metadata; a source
checkout that was never installed reads it from the ``pyproject.toml``
beside the package.
"""

import os
import re
from importlib import metadata
from typing import Optional

__all__ = ["version"]

_PYPROJECT = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "pyproject.toml")
_VERSION_LINE = re.compile(r'^version\s*=\s*"([^"]+)"\s*$', re.MULTILINE)


_NAME_LINE = re.compile(r'^name\s*=\s*"fastzk"\s*$', re.MULTILINE)


def _from_checkout() -> Optional[str]:
    """The version in the checkout's pyproject.toml, or None outside one."""
    try:
        with open(_PYPROJECT, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    match = _VERSION_LINE.search(text)
    if match is None or not _NAME_LINE.search(text):
        return None
    return match.group(1)


def version() -> str:
    """Return fastzk's version string (PEP 440)."""
    return _from_checkout() or metadata.version("fastzk")
