"""Lock paths: checked and normalised as kazoo's client and the
ZooKeeper server (PathUtils.validatePath) would, so that kazoo's lock
nodes and fastzk's land in the same place."""

import re


def validate_path(path: str) -> None:
    """Raise ValueError unless ``path`` is a valid absolute ZooKeeper path.

    ZooKeeper's PathUtils.validatePath: absolute, no empty, ``.`` or ``..``
    component, no trailing slash (except the root), none of the characters
    the server refuses (NUL, controls, surrogates and private use).
    """
    if not isinstance(path, str):
        raise TypeError("lock path must be a str, not %s" % type(path).__name__)
    if not path.startswith("/"):
        raise ValueError("invalid ZooKeeper path %r: must start with /" % path)
    if path == "/":
        return
    if path.endswith("/"):
        raise ValueError("invalid ZooKeeper path %r: trailing /" % path)
    if "//" in path or "/." in path and _RELATIVE_RE.search(path):
        raise ValueError("invalid ZooKeeper path %r: empty or relative "
                         "component" % path)
    if _BAD_CHAR_RE.search(path):
        raise ValueError("invalid ZooKeeper path %r: control character"
                         % path)


def lock_path(path: str) -> str:
    """The path a lock recipe's nodes go under, normalised as kazoo's client
    normalises every path it sends (``kazoo.protocol.paths.normpath``).

    kazoo's recipes take any str: ``"x"`` is ``"/x"``, ``"/a/"`` is
    ``"/a"``, ``"/a//b"`` is ``"/a/b"`` and ``""`` is the root (below the
    chroot, if any), so the same string puts kazoo's nodes and fastzk's in
    the same place.

    :raises: TypeError if ``path`` is not a str; ValueError for a path
             ZooKeeper refuses: a ``.`` or ``..`` component (kazoo's client
             refuses those with the same error before sending anything) or
             a character the server refuses (NUL, controls, surrogates,
             private use, and characters beyond U+FFFF, which Java sees as
             surrogate pairs).
    """
    if not isinstance(path, str):
        raise TypeError("lock path must be a str, not %s" % type(path).__name__)
    if _BAD_CHAR_RE.search(path):
        raise ValueError("invalid ZooKeeper path %r: a character ZooKeeper "
                         "refuses" % path)
    if (path[:1] != "/" or path[-1:] == "/" or "//" in path
            or "/." in path):
        return _normalised(path)
    return path


def _normalised(path: str) -> str:
    components = [part for part in path.split("/") if part]
    for part in components:
        if part == "." or part == "..":
            raise ValueError("invalid ZooKeeper path %r: relative paths not "
                             "allowed" % path)
    return "/" + "/".join(components)


# PathUtils.validatePath's refused characters and relative components.
_BAD_CHAR_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\uf8ff\ufff0-\U0010ffff]")
_RELATIVE_RE = re.compile(r"/\.\.?(?:/|$)")
