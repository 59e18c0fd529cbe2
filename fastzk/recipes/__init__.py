"""The recipes' parts, behind their public faces :mod:`fastzk.lock`,
:mod:`fastzk.watchers` and :mod:`fastzk.cache`, and shared with the
asyncio client's recipes (:mod:`fastzk.aio`): lock paths and contender
node names, a lock's deadline-bound requests and its acquire attempt,
guaranteed deletes, the release of a recipe's watches, and the tree
cache's reads, reader thread and mirror.  Internal: not part of
fastzk's public API."""
