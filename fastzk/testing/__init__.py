"""Helpers for testing with a real ZooKeeper: start servers and ensembles
(:mod:`fastzk.testing.zkserver`) and inject network faults through a TCP
proxy (:mod:`fastzk.testing.proxy`).  Used by fastzk's tests, benchmarks and
``fastzk bench``; never a mock server."""
