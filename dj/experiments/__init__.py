"""Persona experiments: definitions (config/experiments/*.toml), deterministic assignment,
exposure at the first heard voice line, per-listener metrics from the ledger, statistics (SRM,
Welch, CUPED, delta method, always-valid p-values), the decision and its reports."""

from dj.experiments.assign import MIGRATIONS, Experiments, assign, load_experiments
from dj.experiments.definition import Arm, Experiment, ExperimentError, Guardrail, load_all

__all__ = ["MIGRATIONS", "Arm", "Experiment", "ExperimentError", "Experiments", "Guardrail",
           "assign", "load_all", "load_experiments"]
