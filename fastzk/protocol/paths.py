"""Client paths to server paths, as kazoo's client makes them: the chroot
prefixed, the path normalised (``kazoo.protocol.paths._prefix_root``)."""

from os.path import split as _split_path

from kazoo.protocol.paths import _prefix_root

__all__ = ["server_path", "parent_to_make"]


def server_path(chroot: str, path: str) -> str:
    """``path`` below ``chroot`` (normalised, or ``""``), normalised as
    kazoo's ``_prefix_root`` does.

    An already-normal path (absolute, no trailing, doubled or relative
    component: the common case) is only prefixed, which is what kazoo's
    general normalisation returns for it.
    """
    if (path[:1] == "/" and path[-1:] != "/" and "//" not in path
            and "/." not in path):
        return chroot + path if chroot else path
    full: str = _prefix_root(chroot, path)
    return full


def parent_to_make(path: str, sequence: bool) -> str:
    """The parent ``create(path, makepath=True)`` makes when the server
    answers NoNode: for a sequential path ending in ``/`` (the server
    appends the sequence number to it) the path itself, else its parent."""
    if sequence and path.endswith("/"):
        return path.rstrip("/")
    parent: str = _split_path(path)[0]
    return parent
