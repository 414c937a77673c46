"""Pipeline stages: one module per stage, each a Hydra entry point (`main(overrides) -> int`).

Stages compose, they never compute math: read the config (`lmkl.stages.config`), call the library,
write outputs atomically (`lmkl.atomic`) under `lmkl.stages.paths.ProfilePaths`, log to W&B.
"""
