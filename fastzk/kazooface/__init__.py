"""The parts of the kazoo-compatible client behind its public face,
:class:`fastzk.client.KazooClient`: what the parts share
(:mod:`~fastzk.kazooface.base`), starting, stopping and the session's state
(:mod:`~fastzk.kazooface.session`), watch events to kazoo's watchers
(:mod:`~fastzk.kazooface.watches`), znode operations
(:mod:`~fastzk.kazooface.data`), the operations the recipes use
(:mod:`~fastzk.kazooface.recipes`) and the recipes' one interface to the
client (:mod:`~fastzk.kazooface.fastpath`).  Internal: not part of
fastzk's public API."""
