"""Figure `pareto`: final evaluation reward vs evaluation KL (rb) of every run, the non-dominated
front drawn, the share of front points per training estimator printed."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from lmkl.plots import color

MARKERS = "osD^v<>PX*"


def figure(runs: pd.DataFrame, share: pd.DataFrame) -> Figure:
    """runs: runs.csv (estimator, beta, seed, reward, kl_rb, on_front); share: pareto_share.csv."""
    fig = Figure(figsize=(6.4, 4.6))
    ax = fig.add_subplot()
    betas = sorted(runs["beta"].unique())
    for est, d in runs.groupby("estimator"):
        for k, beta in enumerate(betas):
            dd = d[d.beta == beta]
            ax.scatter(dd["kl_rb"], dd["reward"], color=color(est), marker=MARKERS[k % len(MARKERS)], s=40,
                       edgecolors=["k" if f else "none" for f in dd["on_front"]], linewidths=1.2,
                       label=f"{est}, β = {beta:g}")
    front = runs[runs.on_front].sort_values("kl_rb")
    ax.step(front["kl_rb"], front["reward"], where="post", color="k", lw=1, ls="--", label="Pareto front")
    text = "\n".join(f"{r.estimator}: {100 * r.share:.0f} % of front ({r.front_points}/{int(runs.on_front.sum())})"
                     for r in share.itertuples())
    ax.text(0.98, 0.03, text, transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.7"})
    ax.set_xlabel("evaluation KL(policy ‖ reference), rb estimate (nats)")
    ax.set_ylabel("evaluation reward (mean score)")
    ax.set_title("Reward–KL trade-off of every run (lower KL, higher reward is better)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    return fig


def caption(runs: pd.DataFrame, share: pd.DataFrame) -> str:
    parts = ", ".join(f"{r.estimator} {100 * r.share:.0f} % ({r.front_points} of {int(runs.on_front.sum())} front points, "
                      f"{r.runs} runs)" for r in share.itertuples())
    return (
        "# pareto\n\n"
        f"Final evaluation reward against evaluation KL (rb estimate, held-out prompts, temperature 1) of all "
        f"{len(runs)} runs (estimator × β × seed; marker shape = β, colour = estimator used in the KL penalty). "
        "Dashed: the non-dominated front (no other run has both lower KL and higher reward); front points "
        f"are outlined. Share of the front per estimator: {parts}. The paper reports that RB runs are on "
        "the frontier 78 % of the time. Source: results/<profile>/train/*/eval.json.\n"
    )
