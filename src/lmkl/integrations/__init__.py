"""Adapters that put lmkl's KL terms into other trainers' losses (`lmkl.integrations.trl`).

They import lmkl.kl (the math) and the trainer library they adapt, never the pipeline (lmkl.stages).
"""
