"""`lmkl figures`: the figures of a profile from results/P/tables/ → figures/P/.

Each figure is written as PNG and PDF (figures.formats) with a caption file <name>.md saying what it
shows, how it was made, and the numbers it shows (read from the tables):
  variance           std of the estimate vs M per estimator (+ variance_table.csv/.md)
  training_curves    reward and KL vs step, mc vs rb, per β, mean ± std over seeds
  pareto             eval reward vs eval KL (rb) of every run, the front, the share per estimator
  gradient_variance  total variance of the ∇KL estimate per form vs M; exact on toys
  oracle             exact bias and variance of every value estimator on toys (counterexample included)
"""

from __future__ import annotations

import logging

import pandas as pd

from lmkl.atomic import atomic_write_text
from lmkl.stages import runner
from lmkl.stages.inputs import require
from lmkl.stages.paths import FIGURES
from lmkl.stages.pipeline_config import PipelineConfig, profile_paths

log = logging.getLogger("lmkl")

def body(cfg: PipelineConfig) -> None:
    from lmkl import plots
    from lmkl.plots import gradients, oracle, pareto, training, variance

    paths = profile_paths(cfg)

    def table(name: str) -> pd.DataFrame:
        path = require(paths.tables / name, f"table {name}")
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)

    out = paths.figures
    out.mkdir(parents=True, exist_ok=True)
    vt, runs, share = table("variance_table.csv"), table("runs.csv"), table("pareto_share.csv")
    gv, og, ov = table("gradient_variance.csv"), table("oracle_gradients.csv"), table("oracle_values.csv")
    curves, truth = table("training.csv"), table("variance_truth.csv")
    made = {
        "variance": (variance.figure(vt), variance.caption(vt, truth, cfg)),
        "training_curves": (training.figure(curves), training.caption(curves)),
        "pareto": (pareto.figure(runs, share), pareto.caption(runs, share)),
        "gradient_variance": (gradients.figure(gv, og), gradients.caption(gv, og, cfg)),
        "oracle": (oracle.figure(ov), oracle.caption(ov)),
    }
    for name in FIGURES:  # the names the Snakefile declares
        fig, text = made[name]
        plots.save(fig, out / name, cfg.figures.formats, cfg.figures.dpi)
        atomic_write_text(out / f"{name}.md", text)
    atomic_write_text(out / "variance_table.csv", vt.to_csv(index=False))
    atomic_write_text(out / "variance_table.md", variance.table_markdown(vt) + "\n")
    log.info("figures: %s → %s", ", ".join(made), out)


def main(overrides: list[str]) -> int:
    return runner.run("figures", overrides, PipelineConfig, body)
