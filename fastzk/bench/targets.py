"""The targets the benchmark table judges its rows against, and the
issues that set them."""


class Target(object):
    """What a row must show.  ``kind``:

    - ``"ratio"``: fastzk/kazoo >= value (higher is better);
    - ``"fewer"``: kazoo/fastzk >= value (lower is better: time, CPU,
      transactions);
    - ``"zero"``: fastzk's figure is 0;
    - ``"max"``: fastzk's figure <= value;
    - ``"min"``: fastzk's figure >= value.
    """

    def __init__(self, kind, value=None, text=None, source="brief"):
        self.kind = kind
        self.value = value
        self.text = text
        self.source = source

    def describe(self):
        if self.text:
            return self.text
        if self.kind == "ratio":
            return ">=%gx" % self.value
        if self.kind == "fewer":
            return ">=%gx less" % self.value
        if self.kind == "zero":
            return "0"
        if self.kind == "min":
            return ">=%g" % self.value
        return "<=%g" % self.value

    def met(self, kazoo, fastzk):
        """True/False, or None when it cannot be judged."""
        if fastzk is None:
            return None
        if self.kind == "zero":
            return fastzk == 0
        if self.kind == "max":
            return fastzk <= self.value
        if self.kind == "min":
            return fastzk >= self.value
        if kazoo is None:
            return None
        if self.kind == "ratio":
            return kazoo > 0 and fastzk / kazoo >= self.value
        if self.kind == "fewer":
            if fastzk == 0:
                return kazoo > 0
            return kazoo / fastzk >= self.value
        return None


#: Targets, from the issues that set them (issue 2: codec and client;
#: issue 3: Lock; issue 4: watches and TreeCache; issue 6: fleet; issue
#: 13: the client-side limit, figures over the raw wire loop's; issue
#: 16: the asyncio client, over the bare asyncio loop and aiozk) and the
#: brief (memory flat; zero leaks, violations and unconverged storms).
TARGETS = {
    "codec": Target("ratio", 10, source="issue 2"),
    "client.sync_get_children": Target("ratio", 4, source="issue 2"),
    "client.sync_get": Target("ratio", 4, source="issue 2"),
    "client.pipelined_get_children": Target("ratio", 3, source="issue 2"),
    "client.memory": Target("max", 2.0, "flat (<=2 MiB)"),
    "lock.failed_attempt": Target("ratio", 20, source="issue 3"),
    "lock.failed_attempt.txns": Target("zero", text="0 writes",
                                       source="issue 3"),
    "lock.uncontended_cycle": Target("ratio", 2, source="issue 3"),
    "watch.events": Target("ratio", 5, source="issue 4"),
    "cache.start": Target("fewer", 5, source="issue 4"),
    "cache.storm": Target("zero", text="0 runs"),
    "fleet.attempts_per_cpu_s": Target("ratio", 10, source="issue 6"),
    "fleet.txns_per_attempt": Target("fewer", 20, source="issue 6"),
    "fleet.violations": Target("zero"),
    "fleet.leaked_nodes": Target("zero"),
    "limit.rate": Target("min", 1.0, ">=1x raw", source="issue 13"),
    "tls.vs_plain": Target("ratio", 1.0, ">=plaintext", source="issue 14"),
    "limit.cpu_spin_off": Target("max", 1.5, "<=1.5x raw",
                                 source="issue 13"),
    "aio.rate_over_bare": Target("min", 0.9, ">=0.9x bare",
                                 source="issue 16"),
    "aio.sequential.cpu_over_bare": Target("max", 1.3, "<=1.3x bare",
                                           source="issue 16"),
    "aio.gathered.cpu_over_bare": Target("max", 1.5, "<=1.5x bare",
                                         source="issue 16"),
    "aio.lock.cpu": Target("fewer", 4, "<=1/4 aiozk", source="issue 16"),
    "aio.lock.writes": Target("zero", text="0 writes", source="issue 16"),
    "aio.sessions.rss": Target("max", 24, "<=24 KiB", source="issue 16"),
    "aio.sessions.threads": Target("max", 1, "1 thread", source="issue 16"),
}
