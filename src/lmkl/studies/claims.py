"""The claims of the paper (P1–P4) and ours (O1–O3), each with the statistic that decides it and the
rule that turns its 95 % interval into a verdict.

One rule for every claim (`verdict`): a claim says "statistic <relation> threshold" (e.g. the rb
front share > 0.5). With the statistic's 95 % interval [lo, hi]:
  reproduced      every value of the interval satisfies the relation;
  not reproduced  no value of the interval satisfies it;
  inconclusive    the interval straddles the threshold (too wide to tell), or the statistic is NaN
                  (the profile lacks what it needs, e.g. a single seed).
Exact claims (computed on `lmkl.exact` toys, no sampling) have lo = hi = the value.

Sources: paper-digest §5 (the paper's claims; "78 %" is its only number), the abstract, and
design.md §4 (ours). The statistics themselves are computed in `lmkl.studies.claims_report`.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"

_RELATIONS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_NEGATION = {"<": "≥", "<=": ">", ">": "≤", ">=": "<"}


@dataclass(frozen=True)
class Claim:
    """A claim and how it is decided: it holds when `statistic relation threshold`."""

    id: str
    source: str  # "paper" or "ours"
    text: str
    statistic: str  # what is measured, in words
    resampled: str  # what the interval resamples ("exact" when nothing is sampled)
    relation: str  # one of <, <=, >, >=
    threshold: float
    paper: str = ""  # the paper's number, where it gives one

    def __post_init__(self) -> None:
        if self.relation not in _RELATIONS:
            raise ValueError(f"relation: expected one of {sorted(_RELATIONS)}, got {self.relation!r}")

    @property
    def rule(self) -> str:
        """The verdict rule in words (written next to the verdict in claims.md)."""
        t, neg = f"{self.threshold:g}", _NEGATION[self.relation]
        return (f"reproduced if the whole 95 % interval is {self.relation} {t}; not reproduced if it is "
                f"entirely {neg} {t}; inconclusive if it contains {t}")


def verdict(claim: Claim, lo: float, hi: float) -> str:
    """The verdict of `claim` given the 95 % interval [lo, hi] of its statistic (module docstring)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        return INCONCLUSIVE
    holds = _RELATIONS[claim.relation]
    if holds(lo, claim.threshold) and holds(hi, claim.threshold):
        return REPRODUCED
    if not holds(lo, claim.threshold) and not holds(hi, claim.threshold):
        return NOT_REPRODUCED
    return INCONCLUSIVE


@dataclass(frozen=True)
class ClaimResult:
    """A decided claim: the statistic, its 95 % interval, the verdict, and what it rests on."""

    claim: Claim
    value: float
    ci_low: float
    ci_high: float
    detail: str = ""  # the numbers behind the statistic (sample sizes, per-part values)

    @property
    def verdict(self) -> str:
        return verdict(self.claim, self.ci_low, self.ci_high)


# Thresholds: the point where the claim turns false (ratio 1, log-ratio 0, share one half), except
# where the claim's own words set one: "often" (P2b) is read as more than one estimate in ten, and
# "never" (P2a) allows float32 rounding only (RB_NEGATIVE_TOL below).
RB_NEGATIVE_TOL = 1e-6  # nats: per-token KLs are float32 sums Σ_v p (log p − log q); rounding is ~1e-7 per token
OFTEN = 0.10
EXACT_BIAS_FLOOR = 1e-6  # relative gradient bias; the unbiased forms' exact bias is float64 rounding (~1e-12)

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "P1", "paper",
        "RB's estimate has a lower standard deviation than every estimator of public RLHF libraries "
        "(mc = k1, k2, k3, k3_token), at every sample size M.",
        "largest ratio std(rb) / std(b) over baselines b and sample sizes M (std over repetitions, "
        "averaged over policies × prompts; variance study)",
        "policies × prompts (each with its repetitions)", "<", 1.0,
    ),
    Claim(
        "P2a", "paper", "RB is never negative.",
        f"share of rb estimates below −{RB_NEGATIVE_TOL:g} (every M of the variance study; the evaluation's "
        "per-sequence shares in the detail)",
        "exact count (one negative value refutes the claim)", "<=", 0.0,
    ),
    Claim(
        "P2b", "paper", "MC is often negative.",
        "share of negative mc estimates at the smallest M of the variance study",
        "policies × prompts (each with its repetitions)", ">", OFTEN,
    ),
    Claim(
        "P3a", "paper", "Training with the RB KL penalty is more stable.",
        "mean over (β, seed) of log[roughness(rb run) / roughness(mc run)], roughness = std of the step-to-step "
        "change of the training KL (rb estimate) over the second half of training, relative to its mean there",
        "seeds (runs paired by β and seed)", "<", 0.0,
    ),
    Claim(
        "P3b", "paper", "Training with the RB KL penalty keeps the KL in range at the same β.",
        "mean over (β, seed) of log[eval KL(rb run) / eval KL(mc run)] (rb estimate of the KL)",
        "seeds (runs paired by β and seed)", "<", 0.0,
    ),
    Claim(
        "P4a", "paper", "RB-trained models are on the reward–KL Pareto front more often than MC-trained ones.",
        "share of the front points (eval reward ↑, eval KL ↓, all runs) that are rb runs",
        "seeds (all runs of a seed together)", ">", 0.5, paper="78 %",
    ),
    Claim(
        "P4b", "paper", "(P4 without the handful of front points) At equal β and seed, the rb run dominates the mc run.",
        "share of (β, seed) where the rb run dominates the mc run (KL ≤, reward ≥, one strict) minus the share "
        "where the mc run dominates the rb run",
        "seeds (runs paired by β and seed)", ">", 0.0,
    ),
    Claim(
        "O1", "ours", "Var(rb) ≤ Var(mc) is false for summed sequences: the two-step counterexample.",
        "exact Var(rb) / Var(mc) of one sample on the counterexample (lmkl.exact)",
        "exact", ">", 1.0,
    ),
    Claim(
        "O2", "ours", "The rb_causal gradient has the lowest variance of the unbiased gradient forms.",
        "largest ratio total variance(rb_causal) / total variance(f) over the other unbiased forms f and sample "
        "sizes M, at the trained policy of the gradient study",
        "repetitions (paired across forms)", "<", 1.0,
    ),
    Claim(
        "O3", "ours", "The k3_loss gradient (GRPO's k3 as a loss) is biased for ∇KL.",
        "largest exact relative bias ‖E ĝ − ∇KL‖ / ‖∇KL‖ of k3_loss over the toys (lmkl.exact)",
        "exact", ">", EXACT_BIAS_FLOOR,
    ),
)

CLAIMS_BY_ID: dict[str, Claim] = {c.id: c for c in CLAIMS}
