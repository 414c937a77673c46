"""Experiment loops that are not KL math: the variance study, the gradient-variance study, the
exact oracle tables, and the reward–KL Pareto front.

Layering: uses lmkl.kl (estimators, surrogates), lmkl.exact (toys) and lmkl.models (sampling and
scoring); never imported by them. The pipeline stages (lmkl.stages.variance, ...) call these and
write the results; the functions here return tidy rows (lists of dicts) or tensors, never files.
"""

from lmkl.studies.pareto import front_share, pareto_front
from lmkl.studies.slicing import nested_slices, repetition_block

__all__ = ["front_share", "nested_slices", "pareto_front", "repetition_block"]
