"""Figure `variance`: standard deviation of each KL estimator's estimate vs the number of samples M
(log–log), pooled over policies and prompts, with the paper's table (std and share of negatives)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lmkl.plots import color


def figure(table: pd.DataFrame) -> Figure:
    """table: variance_table.csv (estimator, M, std, frac_negative, max_abs, bias, n_policies)."""
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    for est, d in table.sort_values("M").groupby("estimator"):
        d = d[d["std"] > 0]
        ax.plot(d["M"], d["std"], marker="o", ms=4, color=color(est), label=est, lw=2.2 if est in ("mc", "rb") else 1.2)
    Ms = np.sort(table["M"].unique())
    mc = table[table.estimator == "mc"].set_index("M")["std"]
    if len(mc):  # a 1/√M guide anchored at mc's M = 1 value: what i.i.d. averaging alone gives
        ax.plot(Ms, mc.iloc[0] / np.sqrt(Ms / Ms[0]), ls=":", color="k", lw=1, label="∝ 1/√M")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("samples per estimate M (responses per prompt)")
    ax.set_ylabel("std of the KL estimate (nats)")
    ax.set_title("Spread of KL(policy ‖ reference) estimates")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return fig


def table_markdown(table: pd.DataFrame) -> str:
    """std (and share of negative estimates, in %) per estimator (rows) and M (columns)."""
    std = table.pivot(index="estimator", columns="M", values="std")
    neg = table.pivot(index="estimator", columns="M", values="frac_negative")
    head = "| estimator | " + " | ".join(f"M={m}" for m in std.columns) + " |"
    lines = [head, "|" + "---|" * (len(std.columns) + 1)]
    for est in std.index:
        cells = [f"{std.loc[est, m]:.3g} ({100 * neg.loc[est, m]:.0f} %)" for m in std.columns]
        lines.append(f"| {est} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def caption(table: pd.DataFrame, truth: pd.DataFrame, cfg) -> str:
    v = cfg.variance
    m_max = int(table["M"].max())
    at = table[table.M == m_max].set_index("estimator")
    ratio = at.loc["rb", "std"] / at.loc["mc", "std"] if {"rb", "mc"} <= set(at.index) else float("nan")
    mc1 = table[(table.estimator == "mc") & (table.M == table.M.min())]["frac_negative"]
    return (
        "# variance\n\n"
        f"Standard deviation of the KL estimate of every estimator against the number of samples M, log–log. "
        f"For each of {int(table['n_policies'].max())} trained policies and {int(table['prompts'].max())} held-out prompts, "
        f"R = {int(table['repetitions'].max())} independent repetitions at every M ∈ {sorted(table['M'].unique().tolist())}, all estimators "
        f"computed from the same samples (R·max(M) responses per prompt drawn once, temperature {v.temperature}, "
        f"≤ {v.max_new_tokens} new tokens); std across repetitions, averaged over prompts and policies. "
        f"Ground truth: rb over {int(truth['truth_n'].max())} further samples per prompt "
        f"(mean KL over policies and prompts {truth['truth'].mean():.4g} nats). "
        f"At M = {m_max}, std(rb)/std(mc) = {ratio:.3g}; mc gives negative estimates in "
        f"{100 * float(mc1.iloc[0]) if len(mc1) else float('nan'):.0f} % of the M = {int(table.M.min())} estimates, rb in none "
        "(it is a sum of KLs). Dotted: the 1/√M decay of i.i.d. averaging, anchored at mc.\n\n"
        "Table (std in nats, share of negative estimates in parentheses):\n\n" + table_markdown(table) + "\n"
    )
