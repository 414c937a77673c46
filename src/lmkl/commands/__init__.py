"""Command-line tools with their own flags (`lmkl <tool> ...`); each module exposes `main(argv) -> int`.

They parse, call the library, print and write outputs atomically; the math lives in `lmkl.kl`.
"""
