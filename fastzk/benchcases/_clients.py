"""The clients the benchmark cases compare: kazoo's or fastzk's client
and recipes, by the name of their implementation."""

KAZOO_START_TIMEOUT = 30.0


def client_class(impl):
    """The KazooClient class of ``impl`` ("kazoo" or "fastzk")."""
    if impl == "kazoo":
        from kazoo.client import KazooClient
    elif impl == "fastzk":
        from fastzk import KazooClient
    else:
        raise ValueError("unknown impl %r" % (impl,))
    return KazooClient


def make_client(impl, hosts, **kwargs):
    """Start and return a client of ``impl`` connected to ``hosts``."""
    kwargs.setdefault("timeout", 10.0)
    client = client_class(impl)(hosts=hosts, **kwargs)
    client.start(timeout=KAZOO_START_TIMEOUT)
    return client


def lock_class(impl):
    """The Lock recipe of ``impl``: kazoo's, or fastzk's."""
    if impl == "kazoo":
        from kazoo.recipe.lock import Lock
    else:
        from fastzk.lock import Lock
    return Lock


def tree_cache_class(impl):
    """The TreeCache recipe of ``impl``."""
    if impl == "kazoo":
        from kazoo.recipe.cache import TreeCache
    else:
        from fastzk.cache import TreeCache
    return TreeCache


def close_client(client):
    try:
        client.stop()
    finally:
        client.close()
