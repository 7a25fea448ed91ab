"""Figures logged to MLflow: training curves and metrics against K."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def training_curves(history: dict[str, list[float]]):
    """The loss curves of `history` against the epoch; with a `member` series (the ranker's
    seed ensemble, one model after another) each member's epochs are a line of their own,
    from epoch 1."""
    fig, ax = plt.subplots(figsize=(6, 4))
    member = history.get("member") or []
    for key, values in sorted(history.items()):
        if "loss" not in key:
            continue
        groups = sorted(set(member)) if len(member) == len(values) else [None]
        for g in groups:
            ys = values if g is None else [v for v, m in zip(values, member) if m == g]
            label = key if len(groups) == 1 else f"{key}, member {int(g) + 1}"
            ax.plot(range(1, len(ys) + 1), ys, marker="o", ms=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("weighted cross-entropy")
    ax.set_title("Training curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def metrics_at_k(reports: dict[str, dict], metric_names=("ndcg", "recall", "hr")):
    """One panel per metric, one line per model: value against K."""
    fig, axes = plt.subplots(1, len(metric_names), figsize=(4 * len(metric_names), 3.6))
    for ax, m in zip(axes, metric_names):
        for model, rep in reports.items():
            ks = sorted(int(k.split("@")[1]) for k in rep if k.startswith(f"{m}@"))
            ax.plot(ks, [rep[f"{m}@{k}"] for k in ks], marker="o", label=model)
        ax.set_xlabel("K")
        ax.set_title(f"{m.upper()}@K")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    return fig
