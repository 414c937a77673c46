"""Figure `training_curves`: reward and KL vs step, per β (columns), mc vs rb training estimator
(colours), mean over seeds with a ±1 std band."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from lmkl.plots import color

ROWS = (("reward", "reward (mean score of the batch)"), ("kl_rb", "KL(policy ‖ ref), rb estimate (nats)"))


def figure(curves: pd.DataFrame) -> Figure:
    """curves: training.csv (step, reward, kl_rb, ..., estimator, beta, seed)."""
    betas = sorted(curves["beta"].unique())
    fig = Figure(figsize=(3.2 * len(betas) + 0.6, 5.6))
    axes = fig.subplots(len(ROWS), len(betas), sharex=True, squeeze=False)
    for j, beta in enumerate(betas):
        for i, (col, label) in enumerate(ROWS):
            ax = axes[i][j]
            for est, d in curves[curves.beta == beta].groupby("estimator"):
                g = d.groupby("step")[col]
                mean, std = g.mean(), g.std().fillna(0.0)
                n = int(d["seed"].nunique())
                ax.plot(mean.index, mean.values, color=color(est), label=f"{est} ({n} seeds)")
                ax.fill_between(mean.index, mean - std, mean + std, color=color(est), alpha=0.2, lw=0)
            ax.grid(True, alpha=0.3)
            if i == 0:
                ax.set_title(f"β = {beta:g}")
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
            if i == len(ROWS) - 1:
                ax.set_xlabel("training step (updates)")
    axes[0][0].legend(fontsize=7, title="KL penalty estimator", title_fontsize=7)
    fig.suptitle("RLOO training: mc vs rb KL penalty", fontsize=10)
    fig.tight_layout()
    return fig


def caption(curves: pd.DataFrame) -> str:
    last = curves[curves.step == curves.groupby("run")["step"].transform("max")]
    final = last.groupby(["beta", "estimator"])[["reward", "kl_rb"]].mean()
    lines = [
        f"| β = {b:g} | {e} | {r.reward:.3f} | {r.kl_rb:.3f} |" for (b, e), r in final.iterrows()
    ]
    return (
        "# training_curves\n\n"
        "Reward (top) and KL(policy ‖ reference) estimated by rb on each step's training batch (bottom) "
        "during RLOO training, one column per KL coefficient β, one colour per estimator used in the KL "
        f"penalty; line = mean over seeds, band = ±1 std over seeds. {curves['run'].nunique()} runs, "
        f"{int(curves['step'].max())} steps. Source: results/<profile>/train/*/metrics.csv.\n\n"
        "Last step, mean over seeds:\n\n| β | estimator | reward | KL (rb) |\n|---|---|---|---|\n" + "\n".join(lines) + "\n"
    )
