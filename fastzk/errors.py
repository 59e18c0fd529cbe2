"""Exceptions raised by fastzk."""

from kazoo.exceptions import ConnectionDropped

__all__ = ["ProtocolError"]


class ProtocolError(ConnectionDropped):
    """A frame from the server broke the ZooKeeper wire protocol."""
