"""The clients the benchmark cases compare: kazoo's or fastzk's client
and recipes, by the name of their implementation, made with the TLS and
SASL options ``fastzk bench`` was given for the ensemble it measures."""

import json
import os

KAZOO_START_TIMEOUT = 30.0

#: The variable through which ``fastzk bench`` hands the cases (and the
#: processes they start) the TLS and SASL options of ``--hosts``: a JSON
#: object of the options' values (``tls``, ``ca``, ``cert``, ``key``,
#: ``key_password_env``, ``verify_certs``, ``check_hostname``,
#: ``sasl_user``); passwords stay in the variables they were read from.
SECURITY_VARIABLE = "FASTZK_BENCH_SECURITY"


def security_options(environ=None):
    """The TLS and SASL keyword arguments (the same for kazoo's and
    fastzk's KazooClient) of the measured ensemble, from
    :data:`SECURITY_VARIABLE`; ``{}`` when it is unset."""
    environ = os.environ if environ is None else environ
    text = environ.get(SECURITY_VARIABLE, "").strip()
    if not text:
        return {}
    import argparse

    from fastzk.cli.common import client_options

    return client_options(argparse.Namespace(**json.loads(text)), environ)


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
    """Start and return a client of ``impl`` connected to ``hosts``, with
    the ensemble's TLS and SASL options (:func:`security_options`) unless
    ``kwargs`` choose TLS themselves (``use_ssl``)."""
    kwargs.setdefault("timeout", 10.0)
    if "use_ssl" not in kwargs:
        kwargs.update(security_options())
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
