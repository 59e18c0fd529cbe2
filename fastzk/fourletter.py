"""ZooKeeper's four-letter words: a command of four ASCII letters sent on a
fresh connection to a server's client port (``ruok``, ``srvr``, ``cons``,
``wchp``...), answered as text and then the connection closed.  A server
answers only the words its ``4lw.commands.whitelist`` allows; for the
others it says so in the text."""

import socket

__all__ = ["four_letter_word"]


def four_letter_word(host: str, port: int, word: str, timeout: float = 5.0,
                     limit: int = 64 << 20) -> str:
    """Send a four-letter word to ``host:port`` and return the whole answer
    (at most ``limit`` bytes of it) as text.

    :raises: OSError when the server cannot be reached or the connection
             fails, :exc:`socket.timeout` when it does not answer within
             ``timeout`` seconds.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(word.encode("ascii"))
        chunks = []
        size = 0
        while size < limit:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
            size += len(data)
    return b"".join(chunks).decode("utf-8", "replace")
