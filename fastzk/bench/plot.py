"""The ratios of the table drawn as a bar chart (``--plot``, needs
matplotlib)."""


def write_plot(rows, path, title=None):
    """Bar chart of the ratios (log scale).  Returns None on success, else
    the reason no plot was written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ("matplotlib is not installed: no plot written "
                "(pip install matplotlib)")
    items = []
    for row in rows:
        r = row.ratio
        if r is None or r <= 0 or not row.judge:
            continue
        better = r if row.higher_better else 1.0 / r
        items.append((row.key, better))
    if not items:
        return "no ratios to plot"
    fig, ax = plt.subplots(figsize=(10, max(4, 0.28 * len(items))))
    labels = [k for k, _ in items]
    values = [v for _, v in items]
    colors = ["#2a9d3f" if v >= 1 else "#c0392b" for v in values]
    # Bars grow from 1x: right = fastzk better, left = worse.
    ax.barh(range(len(items)), [v - 1.0 for v in values], left=1.0,
            color=colors)
    ax.set_yticks(range(len(items)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("fastzk advantage over kazoo 2.11 (x, log scale; "
                  ">1 = fastzk better)")
    if title:
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None
