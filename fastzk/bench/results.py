"""The suite's raw results, read from pytest-benchmark's JSON, and the
row of the table they become."""


def suite_results(data):
    """{(case, impl): {"rate": ops/s or None, "median_s": ..., metrics...}}
    from pytest-benchmark's JSON."""
    out = {}
    for bench in (data or {}).get("benchmarks", ()):
        info = bench.get("extra_info") or {}
        case, impl = info.get("case"), info.get("impl")
        if not case:
            continue
        stats = bench.get("stats") or {}
        median = stats.get("median")
        entry = dict(info.get("metrics") or {})
        entry["median_s"] = median
        entry["rounds"] = stats.get("rounds")
        ops = info.get("ops_per_round")
        entry["rate"] = (ops / median) if ops and median else None
        entry["name"] = bench.get("name")
        out[(case, impl)] = entry
        for partner in info.get("partners") or ():
            # Other clients' rounds, alternated with these (see
            # benchmarks/_benchlib.Alternating).
            other = dict(partner.get("metrics") or {})
            median = partner.get("median_s")
            ops = partner.get("ops_per_round")
            other["median_s"] = median
            other["rounds"] = partner.get("rounds")
            other["rate"] = (ops / median) if ops and median else None
            other["name"] = entry["name"]
            out[(case, partner["impl"])] = other
        for missing in ("c_client_missing", "raw_loop_missing",
                        "spin_on_missing", "aiozk_missing"):
            if info.get(missing):
                entry[missing] = info[missing]
    return out


class Row(object):
    """One line of the table."""

    def __init__(self, label, kazoo, fastzk, unit="", higher_better=True,
                 target=None, note="", kazoo_text=None, fastzk_text=None,
                 ratio=True, key=None, judge=True):
        self.label = label
        self.kazoo = kazoo
        self.fastzk = fastzk
        self.unit = unit
        self.higher_better = higher_better
        self.target = target
        self.note = note
        self.kazoo_text = kazoo_text
        self.fastzk_text = fastzk_text
        self.show_ratio = ratio
        self.judge = judge
        self.key = key or label

    @property
    def ratio(self):
        if not self.show_ratio or self.kazoo is None or self.fastzk is None:
            return None
        if self.kazoo == 0:
            return None
        return self.fastzk / float(self.kazoo)

    def verdict(self):
        parts = []
        r = self.ratio if self.judge else None
        if r is not None:
            if abs(r - 1.0) < 0.05:
                parts.append("same")
            elif (r > 1.0) == self.higher_better:
                parts.append("better")
            else:
                parts.append("WORSE")
        elif self.judge and self.show_ratio and self.kazoo == 0 \
                and self.fastzk is not None:
            parts.append("same" if self.fastzk == 0 else (
                "WORSE" if not self.higher_better else "better"))
        met = self.target.met(self.kazoo, self.fastzk) if self.target else None
        if met is True:
            parts.append("target met")
        elif met is False:
            parts.append("target MISSED")
        return ", ".join(parts) or "-"

    def as_dict(self):
        return {
            "label": self.label,
            "key": self.key,
            "kazoo": self.kazoo,
            "fastzk": self.fastzk,
            "unit": self.unit,
            "ratio_fastzk_over_kazoo": self.ratio,
            "higher_is_better": self.higher_better,
            "target": self.target.describe() if self.target else None,
            "target_source": self.target.source if self.target else None,
            "target_met": (self.target.met(self.kazoo, self.fastzk)
                           if self.target else None),
            "verdict": self.verdict(),
            "note": self.note,
        }


def _get(results, case, impl, key="rate"):
    entry = results.get((case, impl))
    if entry is None:
        return None
    return entry.get(key)
