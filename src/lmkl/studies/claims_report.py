"""Decide every claim of `lmkl.studies.claims` from a profile's aggregate tables.

    tables = read_tables(results / "tables")
    results = evaluate_claims(tables, seed=0, n_boot=2000)
    write_claims(results, figures / profile, title="...")   # claims.md + claims.csv, atomically

Tables used (written by `lmkl aggregate`): runs.csv (final evaluation of every run), training.csv
(metrics per step), variance.parquet (every estimate of the variance study), oracle_values.csv and
oracle_gradients.csv (exact toys), gradient_variance.csv and gradient_repetitions.parquet (the
gradient study, per repetition). The intervals resample what is independent
(`lmkl.studies.claims_bootstrap`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from lmkl.studies.claims import CLAIMS_BY_ID, RB_NEGATIVE_TOL, ClaimResult
from lmkl.studies.claims_bootstrap import (
    paired_seed_mean,
    rep_bootstrap,
    seed_bootstrap,
    unit_bootstrap,
)
from lmkl.studies.pareto import pareto_front

TABLES = (
    "runs.csv", "training.csv", "variance.parquet", "oracle_values.csv", "oracle_gradients.csv",
    "gradient_variance.csv", "gradient_repetitions.parquet",
)
BASELINES = ("mc", "k2", "k3", "k3_token")  # the value estimators of public RLHF libraries (P1)
TRAINED = ("mc", "rb")  # the two training estimators that P3/P4 compare


def read_tables(tables_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Every table of TABLES from `tables_dir`; FileNotFoundError naming the first missing one."""
    tables_dir = Path(tables_dir)
    out = {}
    for name in TABLES:
        path = tables_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"claims: table {name} not found in {tables_dir} (run `lmkl aggregate`)")
        out[name] = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    return out


# ---------------------------------------------------------------------------------------------
# estimation claims: the variance study's estimates as an array [units, estimators, M, repetitions]


def estimate_array(variance: pd.DataFrame, estimators: list[str]) -> tuple[np.ndarray, list[int]]:
    """(x [U, E, M, R], sizes): the estimates of `estimators`, one unit per (policy, prompt).

    Raises ValueError if a unit lacks an (estimator, M, repetition) cell (the study is incomplete).
    """
    df = variance[variance["estimator"].isin(estimators)]
    sizes = sorted(int(m) for m in df["M"].unique())
    reps = sorted(df["repetition"].unique())
    units = df[["policy", "prompt"]].drop_duplicates().sort_values(["policy", "prompt"])
    full = pd.MultiIndex.from_product(
        [list(map(tuple, units.to_numpy())), estimators, sizes, reps], names=["unit", "estimator", "M", "repetition"]
    )
    s = df.assign(unit=list(zip(df["policy"], df["prompt"]))).set_index(["unit", "estimator", "M", "repetition"])["estimate"]
    s = s.reindex(full)
    if s.isna().any():
        missing = s[s.isna()].index[0]
        raise ValueError(f"variance.parquet: no estimate for (policy, prompt), estimator, M, repetition = {missing}")
    return s.to_numpy().reshape(len(units), len(estimators), len(sizes), len(reps)), sizes


def claim_p1(variance: pd.DataFrame, rng, n_boot: int) -> ClaimResult:
    base = [b for b in BASELINES if b in set(variance["estimator"])]
    if "rb" not in set(variance["estimator"]) or not base:
        return _missing("P1", "the variance study has no rb or no baseline estimator")
    x, sizes = estimate_array(variance, ["rb", *base])

    def ratios(a: np.ndarray) -> np.ndarray:  # [baselines, M]: mean over units of the std over repetitions
        std = a.std(axis=-1, ddof=1).mean(axis=0)  # [E, M]
        with np.errstate(divide="ignore", invalid="ignore"):
            return std[0] / std[1:]

    value, lo, hi = unit_bootstrap(x, lambda a: float(np.max(ratios(a))), n_boot, rng)
    r = ratios(x)
    worst = np.unravel_index(np.argmax(r), r.shape)
    detail = (f"worst: std(rb)/std({base[worst[0]]}) at M={sizes[worst[1]]}; per baseline, largest ratio over M: "
              + ", ".join(f"{b} {r[i].max():.3g}" for i, b in enumerate(base))
              + f"; {x.shape[0]} policy×prompt units × {x.shape[-1]} repetitions, M ∈ {sizes}")
    return ClaimResult(CLAIMS_BY_ID["P1"], value, lo, hi, detail)


def claim_p2a(variance: pd.DataFrame, runs: pd.DataFrame) -> ClaimResult:
    rb = variance.loc[variance["estimator"] == "rb", "estimate"]
    if rb.empty:
        return _missing("P2a", "the variance study has no rb estimate")
    share = float((rb < -RB_NEGATIVE_TOL).mean())
    detail = f"{int((rb < -RB_NEGATIVE_TOL).sum())} of {len(rb)} rb estimates below −{RB_NEGATIVE_TOL:g}; min {rb.min():.3g}"
    if "kl_frac_negative_rb" in runs:
        detail += (f"; evaluation (per sequence, strictly < 0): largest share over runs rb "
                   f"{runs['kl_frac_negative_rb'].max():.3g}")
        if "kl_frac_negative_mc" in runs:
            detail += f", mc {runs['kl_frac_negative_mc'].min():.3g}–{runs['kl_frac_negative_mc'].max():.3g}"
    return ClaimResult(CLAIMS_BY_ID["P2a"], share, share, share, detail)


def claim_p2b(variance: pd.DataFrame, rng, n_boot: int) -> ClaimResult:
    if "mc" not in set(variance["estimator"]):
        return _missing("P2b", "the variance study has no mc estimate")
    x, sizes = estimate_array(variance, ["mc"])
    x = x[:, 0, 0]  # [U, R] at the smallest M
    value, lo, hi = unit_bootstrap(x, lambda a: float((a < 0).mean()), n_boot, rng)
    all_m = (variance.loc[variance["estimator"] == "mc"].groupby("M")["estimate"].apply(lambda s: (s < 0).mean()))
    detail = (f"M={sizes[0]}; share negative per M: " + ", ".join(f"M={int(m)} {v:.2f}" for m, v in all_m.items())
              + f"; {x.shape[0]} units × {x.shape[1]} repetitions")
    return ClaimResult(CLAIMS_BY_ID["P2b"], value, lo, hi, detail)


# ---------------------------------------------------------------------------------------------
# training claims: runs paired by (β, seed), seeds resampled


def paired_matrix(per_run: pd.Series, runs: pd.DataFrame, fn: Callable[[float, float], float]) -> tuple[np.ndarray, list, list]:
    """d [B, S] = fn(value of the rb run, value of the mc run) for each (β, seed); NaN where a run is missing.

    per_run: a value per run name (index = runs.run)."""
    betas, seeds = sorted(runs["beta"].unique()), sorted(runs["seed"].unique())
    key = runs.set_index(["estimator", "beta", "seed"])["run"]
    d = np.full((len(betas), len(seeds)), np.nan)
    for i, b in enumerate(betas):
        for j, s in enumerate(seeds):
            if ("rb", b, s) in key.index and ("mc", b, s) in key.index:
                d[i, j] = fn(per_run[key[("rb", b, s)]], per_run[key[("mc", b, s)]])
    return d, betas, seeds


def _log_ratio(a: float, b: float) -> float:
    return float(np.log(a / b)) if a > 0 and b > 0 else float("nan")


def roughness(training: pd.DataFrame, column: str = "kl_rb") -> pd.Series:
    """Per run: std of the step-to-step change of `column` over the second half of training, divided by the
    mean of `column` there (scale-free: a run held at a lower KL is not called stable for that alone)."""
    def one(d: pd.DataFrame) -> float:
        d = d.sort_values("step")
        half = d[d["step"] > d["step"].max() / 2][column].to_numpy(dtype=float)
        if half.size < 3 or not half.mean() > 0:
            return float("nan")
        return float(np.diff(half).std(ddof=1) / half.mean())

    return training.groupby("run")[["step", column]].apply(one)


def _pairs_detail(d: np.ndarray, betas: list, seeds: list) -> str:
    per_beta = ", ".join(f"β={b:g} {np.nanmean(row):+.3g}" for b, row in zip(betas, d) if np.isfinite(row).any())
    return f"{np.isfinite(d).sum()} pairs ({len(betas)} β × {len(seeds)} seeds); mean per β: {per_beta}"


def claim_p3a(training: pd.DataFrame, runs: pd.DataFrame, rng, n_boot: int) -> ClaimResult:
    d, betas, seeds = paired_matrix(roughness(training), runs, _log_ratio)
    value, lo, hi = paired_seed_mean(d, n_boot, rng)
    return ClaimResult(CLAIMS_BY_ID["P3a"], value, lo, hi, _pairs_detail(d, betas, seeds))


def claim_p3b(runs: pd.DataFrame, rng, n_boot: int) -> ClaimResult:
    d, betas, seeds = paired_matrix(runs.set_index("run")["kl_rb"], runs, _log_ratio)
    value, lo, hi = paired_seed_mean(d, n_boot, rng)
    return ClaimResult(CLAIMS_BY_ID["P3b"], value, lo, hi, _pairs_detail(d, betas, seeds))


def rb_front_share(kl: np.ndarray, reward: np.ndarray, is_rb: np.ndarray, rows_of_seed: list[np.ndarray],
                   chosen: np.ndarray) -> float:
    """Share of rb runs among the front of the runs of the seeds `chosen` (indices into rows_of_seed, repeats allowed)."""
    rows = np.concatenate([rows_of_seed[k] for k in chosen])
    front = pareto_front(kl[rows], reward[rows])
    return float(is_rb[rows][front].mean()) if front.any() else float("nan")


def claim_p4a(runs: pd.DataFrame, rng, n_boot: int) -> ClaimResult:
    runs = runs[runs["estimator"].isin(TRAINED)]
    seeds = sorted(runs["seed"].unique())
    kl, reward = runs["kl_rb"].to_numpy(float), runs["reward"].to_numpy(float)
    is_rb = (runs["estimator"] == "rb").to_numpy()
    rows_of_seed = [np.flatnonzero(runs["seed"].to_numpy() == s) for s in seeds]
    value, lo, hi = seed_bootstrap(
        len(seeds), lambda idx: rb_front_share(kl, reward, is_rb, rows_of_seed, idx), n_boot, rng
    )
    front = pareto_front(kl, reward)
    detail = f"{int(is_rb[front].sum())} of {int(front.sum())} front points are rb runs ({len(runs)} runs, {len(seeds)} seeds)"
    return ClaimResult(CLAIMS_BY_ID["P4a"], value, lo, hi, detail)


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """(kl, reward) a dominates b: KL ≤ and reward ≥, one of them strict."""
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])


def claim_p4b(runs: pd.DataFrame, rng, n_boot: int) -> ClaimResult:
    point = {r.run: (r.kl_rb, r.reward) for r in runs.itertuples()}
    d, _, _ = paired_matrix(
        pd.Series(point), runs, lambda rb, mc: float(dominates(rb, mc)) - float(dominates(mc, rb))
    )
    value, lo, hi = paired_seed_mean(d, n_boot, rng)
    ok = d[np.isfinite(d)]
    detail = (f"rb dominates in {int((ok > 0).sum())}, mc dominates in {int((ok < 0).sum())}, neither in "
              f"{int((ok == 0).sum())} of {ok.size} (β, seed) pairs")
    return ClaimResult(CLAIMS_BY_ID["P4b"], value, lo, hi, detail)


# ---------------------------------------------------------------------------------------------
# our claims: exact toys and the gradient study


def claim_o1(oracle_values: pd.DataFrame) -> ClaimResult:
    v = oracle_values.set_index(["toy", "estimator"])["var"]
    if ("counterexample", "rb") not in v.index or ("counterexample", "mc") not in v.index:
        return _missing("O1", "oracle_values.csv has no rb/mc rows for the counterexample")
    ratio = float(v[("counterexample", "rb")] / v[("counterexample", "mc")])
    toys = [t for t in oracle_values["toy"].unique() if t != "counterexample"]
    others = [float(v[(t, "rb")] / v[(t, "mc")]) for t in toys if (t, "rb") in v.index and (t, "mc") in v.index]
    detail = "exact; " + (f"random toys: Var(rb)/Var(mc) from {min(others):.3g} to {max(others):.3g} ({len(others)} toys)"
                          if others else "no random toys")
    return ClaimResult(CLAIMS_BY_ID["O1"], ratio, ratio, ratio, detail)


def claim_o2(gradient_summary: pd.DataFrame, repetitions: pd.DataFrame, rng, n_boot: int) -> ClaimResult:
    from lmkl.kl import UNBIASED_FORMS

    reps = repetitions[repetitions["point"] != "reference"]  # at p = q every estimate is exactly 0
    summ = gradient_summary[gradient_summary["point"] != "reference"]
    forms = [f for f in sorted(set(reps["form"])) if f in UNBIASED_FORMS]
    if reps.empty or "rb_causal" not in forms or len(forms) < 2:
        return _missing("O2", "the gradient study has no trained point with rb_causal and another unbiased form")
    point = sorted(reps["point"].unique())[0]
    reps, summ = reps[reps["point"] == point], summ[summ["point"] == point]
    others = [f for f in forms if f != "rb_causal"]
    sizes = sorted(int(m) for m in reps["M"].unique())
    # x [F, M, R]: ‖ĝ_r‖² per form, M, repetition (forms of one repetition share its samples)
    x = reps.set_index(["form", "M", "repetition"])["sq_norm"].unstack("repetition").reindex(
        pd.MultiIndex.from_product([["rb_causal", *others], sizes])).to_numpy().reshape(1 + len(others), len(sizes), -1)
    # Total variance V_f = E‖ĝ_f‖² − ‖E ĝ_f‖², and E ĝ_f = ∇KL is the same for every unbiased form: c[M] is its
    # squared norm, estimated without bias per form as ‖ḡ_f‖² − V_f / R (summary) and averaged over the forms.
    s = summ[summ["form"].isin(forms)].assign(c=lambda t: t["mean_norm"] ** 2 - t["total_variance"] / t["repetitions"])
    c = s.groupby("M")["c"].mean().reindex(sizes).to_numpy()[:, None]  # [M, 1]

    def ratios(a: np.ndarray) -> np.ndarray:  # [others, M]
        v = a.mean(axis=-1) - c[:, 0]  # [F, M]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(v[1:] > 0, v[0] / v[1:], np.nan)

    value, lo, hi = rep_bootstrap(x, lambda a: float(np.nanmax(ratios(a))) if np.isfinite(ratios(a)).any() else np.nan,
                                  n_boot, rng)
    r = ratios(x)
    detail = (f"at {point}; per form, largest ratio over M: " + ", ".join(f"{f} {np.nanmax(r[i]):.3g}" for i, f in enumerate(others))
              + f"; {x.shape[-1]} repetitions, M ∈ {sizes}")
    return ClaimResult(CLAIMS_BY_ID["O2"], value, lo, hi, detail)


def claim_o3(oracle_gradients: pd.DataFrame) -> ClaimResult:
    from lmkl.kl import UNBIASED_FORMS

    g = oracle_gradients
    k3 = g.loc[g["form"] == "k3_loss", "rel_bias"]
    if k3.empty:
        return _missing("O3", "oracle_gradients.csv has no k3_loss row")
    value = float(k3.max())
    unbiased = g.loc[g["form"].isin(UNBIASED_FORMS), "rel_bias"]
    detail = (f"exact, {g['toy'].nunique()} toys; k3_loss relative bias {k3.min():.3g}–{value:.3g}; "
              f"largest of the unbiased forms {unbiased.max():.2g}")
    return ClaimResult(CLAIMS_BY_ID["O3"], value, value, value, detail)


def _missing(claim_id: str, why: str) -> ClaimResult:
    nan = float("nan")
    return ClaimResult(CLAIMS_BY_ID[claim_id], nan, nan, nan, f"not computed: {why}")


def evaluate_claims(tables: dict[str, pd.DataFrame], *, seed: int = 0, n_boot: int = 2000) -> list[ClaimResult]:
    """Every claim of CLAIMS decided from the aggregate tables (read_tables); intervals from
    `n_boot` bootstrap resamples drawn with numpy's generator seeded by `seed`."""
    if n_boot < 100:
        raise ValueError(f"n_boot: expected ≥ 100 resamples for a 95 % percentile interval, got {n_boot}")
    rng = np.random.default_rng(seed)
    runs, variance = tables["runs.csv"], tables["variance.parquet"]
    return [
        claim_p1(variance, rng, n_boot),
        claim_p2a(variance, runs),
        claim_p2b(variance, rng, n_boot),
        claim_p3a(tables["training.csv"], runs, rng, n_boot),
        claim_p3b(runs, rng, n_boot),
        claim_p4a(runs, rng, n_boot),
        claim_p4b(runs, rng, n_boot),
        claim_o1(tables["oracle_values.csv"]),
        claim_o2(tables["gradient_variance.csv"], tables["gradient_repetitions.parquet"], rng, n_boot),
        claim_o3(tables["oracle_gradients.csv"]),
    ]


# ---------------------------------------------------------------------------------------------
# output


def claims_frame(results: list[ClaimResult]) -> pd.DataFrame:
    """One row per claim: id, source, claim, statistic, value, ci_low, ci_high, paper, verdict, rule, resampled, detail."""
    return pd.DataFrame([
        {"id": r.claim.id, "source": r.claim.source, "claim": r.claim.text, "statistic": r.claim.statistic,
         "value": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high, "paper": r.claim.paper, "verdict": r.verdict,
         "rule": r.claim.rule, "resampled": r.claim.resampled, "detail": r.detail}
        for r in results
    ])


def _num(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:.3g}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def claims_markdown(results: list[ClaimResult], title: str, preamble: str = "") -> str:
    """claims.md: the verdict table, then each claim with its statistic, interval, rule and detail."""
    lines = [f"# {title}", ""]
    if preamble:
        lines += [preamble, ""]
    lines += ["| claim | statistic | 95 % interval | paper | verdict |", "|---|---|---|---|---|"]
    for r in results:
        ci = "exact" if r.claim.resampled.startswith("exact") else f"[{_num(r.ci_low)}, {_num(r.ci_high)}]"
        lines.append(f"| **{r.claim.id}** {_cell(r.claim.text)} | {_num(r.value)} | {ci} | {r.claim.paper or '–'} | **{r.verdict}** |")
    lines += ["", "## How each claim is decided", ""]
    for r in results:
        lines += [
            f"**{r.claim.id}** ({r.claim.source}) — {r.claim.text}",
            f"- statistic: {r.claim.statistic} = {_num(r.value)}, 95 % interval [{_num(r.ci_low)}, {_num(r.ci_high)}]",
            f"- interval resamples: {r.claim.resampled}",
            f"- rule: {r.claim.rule} → **{r.verdict}**",
            f"- detail: {r.detail}",
            "",
        ]
    return "\n".join(lines)


def rst_escape(text: str) -> str:
    """Text as literal reStructuredText inline content (markup characters backslash-escaped)."""
    out = str(text).replace("\\", "\\\\")
    for ch in "*`|_[]<>":
        out = out.replace(ch, "\\" + ch)
    return out.replace("{{", "{ {").replace("{%", "{ %")  # Snakemake renders captions through Jinja2 too


def claims_rst(results: list[ClaimResult], title: str) -> str:
    """The verdict table as reStructuredText (the caption of claims.csv in the Snakemake report)."""
    lines = [f"**{rst_escape(title)}**", "", ".. list-table::", "   :header-rows: 1", "",
             "   * - claim", "     - statistic", "     - 95 % interval", "     - paper", "     - verdict"]
    for r in results:
        ci = "exact" if r.claim.resampled.startswith("exact") else f"[{_num(r.ci_low)}, {_num(r.ci_high)}]"
        lines += [f"   * - **{r.claim.id}** {rst_escape(r.claim.text)}", f"     - {_num(r.value)}", f"     - {ci}",
                  f"     - {rst_escape(r.claim.paper or '–')}", f"     - **{r.verdict}**"]
    lines += ["", "Each claim's statistic, rule and detail: the columns of this table, and claims.md.", ""]
    return "\n".join(lines)


def write_claims(results: list[ClaimResult], figures_dir: str | Path, *, title: str, preamble: str = "") -> tuple[Path, Path]:
    """Write figures_dir/claims.md and claims.csv (each atomically); returns their paths."""
    from lmkl.atomic import atomic_write_text

    figures_dir = Path(figures_dir)
    md = atomic_write_text(figures_dir / "claims.md", claims_markdown(results, title, preamble) + "\n")
    csv = atomic_write_text(figures_dir / "claims.csv", claims_frame(results).to_csv(index=False))
    return md, csv
