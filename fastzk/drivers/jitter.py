"""The random numbers of fastzk's drivers: the order of hosts and the
jitter of reconnects and retries.

They come from a generator of fastzk's own, never from the global
:mod:`random` state: an application may have seeded that one, and a
library's background threads must not move it.
"""

import random

__all__ = ["RANDOM"]

#: fastzk's generator.
RANDOM = random.Random()
