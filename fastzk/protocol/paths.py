"""Client paths to server paths, as kazoo's client makes them: the chroot
prefixed, the path normalised (``kazoo.protocol.paths._prefix_root``)."""

from kazoo.protocol.paths import _prefix_root

__all__ = ["server_path"]


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
