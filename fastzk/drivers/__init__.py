"""Drivers of the session state machine: what owns the I/O.

:mod:`fastzk.drivers.transport` opens the connections; the thread driver
(:class:`fastzk.drivers.engine.Engine`) runs the session over them.
"""
