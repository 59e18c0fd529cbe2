"""fastzk for asyncio: :class:`AsyncClient` and its recipes, on the same
sans-I/O session core as the thread client, with no threads."""

from fastzk.aio.client import AsyncClient

__all__ = ["AsyncClient"]
