"""Persona experiments: deterministic assignment of listeners to arms, and exposure logging."""

from dj.experiments.assign import MIGRATIONS, Arm, Experiment, Experiments, load_experiments

__all__ = ["MIGRATIONS", "Arm", "Experiment", "Experiments", "load_experiments"]
