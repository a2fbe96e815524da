"""Synthetic datasets with ground truth: objects, probes, scan trajectories and the noisy forward model."""

from .config import NOISELESS_PHOTONS, SimulationConfig
from .objects import OBJECT_KINDS, make_object
from .probes import PROBE_KINDS, make_probe
from .scans import SCAN_KINDS, make_trajectory
from .simulate import noiseless_intensity, simulate, simulate_to_files

__all__ = [
    "NOISELESS_PHOTONS",
    "OBJECT_KINDS",
    "PROBE_KINDS",
    "SCAN_KINDS",
    "SimulationConfig",
    "make_object",
    "make_probe",
    "make_trajectory",
    "noiseless_intensity",
    "simulate",
    "simulate_to_files",
]
