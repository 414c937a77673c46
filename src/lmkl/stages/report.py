"""`lmkl report profile=P`: every claim of the paper (and ours) decided from results/P/tables/.

Writes to figures/P/ (each file atomically):
  claims.md, claims.csv   per claim: the statistic, its 95 % bootstrap interval, the paper's number,
                          the verdict (reproduced / not reproduced / inconclusive) and its rule
                          (`lmkl.studies.claims`, `lmkl.studies.claims_report`)
  report/<figure>.rst     each figure's caption (its <figure>.md) as reStructuredText, and
  report/claims.rst       the verdict table: the captions of `snakemake --report figures/P/report.html`
and, unless W&B is off, the profile's report run (id report-<P>): the figures as images, the claims
as a table, each verdict in its summary (`lmkl.tracking.log_report`).
"""

from __future__ import annotations

import logging
import math

from lmkl.atomic import atomic_write_text
from lmkl.stages import runner
from lmkl.stages.config import to_dict
from lmkl.stages.paths import FIGURES  # the figures whose captions go into the HTML report
from lmkl.stages.pipeline_config import ReportConfig, profile_paths
from lmkl.stages.runner import StageError

log = logging.getLogger("lmkl")


def caption_rst(markdown: str) -> str:
    """A figure caption file (<figure>.md: a '# name' line, then paragraphs) as reStructuredText."""
    from lmkl.studies.claims_report import rst_escape

    lines = [ln for ln in markdown.splitlines() if not ln.startswith("# ")]
    return "\n".join(rst_escape(ln) for ln in lines).strip() + "\n"


def preamble(cfg: ReportConfig, tables) -> str:
    from lmkl.studies.claims_bootstrap import MIN_SEEDS

    runs = tables["runs.csv"]
    return (
        f"Profile `{cfg.profile.name}`: {cfg.profile.description or ''} — {len(runs)} training runs "
        f"({', '.join(cfg.sweep.estimators)} × β {', '.join(f'{b:g}' for b in cfg.sweep.betas)} × "
        f"{len(cfg.sweep.seeds)} seeds, {cfg.train.steps} updates each). Intervals: percentile bootstrap, "
        f"{cfg.report.n_boot} resamples (numpy seed {cfg.report.seed}). Tables: results/{cfg.profile.name}/tables/; "
        "rules: `lmkl.studies.claims`. With S seeds the seed bootstrap has only C(2S−1, S) distinct resamples "
        f"({math.comb(2 * MIN_SEEDS - 1, MIN_SEEDS)} for S = {MIN_SEEDS}): its intervals are optimistic, read them as a "
        f"lower bound on the uncertainty; with fewer than {MIN_SEEDS} seeds the claims resampled over seeds get no "
        "interval ([–, –]) and stay inconclusive."
    )


def body(cfg: ReportConfig) -> None:
    from lmkl.studies.claims_report import (
        claims_frame,
        claims_rst,
        evaluate_claims,
        read_tables,
        write_claims,
    )

    paths = profile_paths(cfg)
    try:
        tables = read_tables(paths.tables)
    except FileNotFoundError as e:
        raise StageError(str(e)) from e
    try:
        results = evaluate_claims(tables, seed=cfg.report.seed, n_boot=cfg.report.n_boot)
    except ValueError as e:  # an incomplete or inconsistent table
        raise StageError(str(e)) from e
    title = f"Claims — profile {cfg.profile.name}"
    md, csv = write_claims(results, paths.figures, title=title, preamble=preamble(cfg, tables))
    captions = {}
    for name in FIGURES:
        src = paths.figures / f"{name}.md"
        if not src.is_file():
            raise StageError(f"caption {src} not found (run `lmkl figures` first)")
        captions[name] = src.read_text()
        atomic_write_text(paths.figures / "report" / f"{name}.rst", caption_rst(captions[name]))
    atomic_write_text(paths.figures / "report" / "claims.rst", claims_rst(results, title))
    verdicts = {r.claim.id: r.verdict for r in results}
    log.info("report: %s → %s, %s", verdicts, md, csv)
    from lmkl import tracking

    if tracking.enabled(cfg.wandb.enabled):
        fmt = "png" if "png" in cfg.figures.formats else None
        images = {f"figures/{n}": (paths.figures / f"{n}.{fmt}", captions[n]) for n in FIGURES} if fmt else {}
        summary = {f"claims/{r.claim.id}/verdict": r.verdict for r in results}
        summary |= {f"claims/{r.claim.id}/{k}": getattr(r, k) for r in results for k in ("value", "ci_low", "ci_high")}
        tracking.log_report(project=cfg.wandb.project, profile=cfg.profile.name, dir=paths.root / "wandb", images=images,
                   table_name="claims", table=claims_frame(results), summary=summary, config=to_dict(cfg))


def main(overrides: list[str]) -> int:
    return runner.run("report", overrides, ReportConfig, body)
