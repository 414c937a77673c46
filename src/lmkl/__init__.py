"""lmkl — Rao–Blackwellized KL estimation between language models.

Layers (lower never imports higher): kl → exact → models → rewards → rloo → tracking → stages → cli.
"""

__version__ = "0.1.0"
