"""Data layer: the :class:`ScanData` container, NPZ and ptychodus HDF5 readers/writers, and the simulator.

Knows nothing of torch modules; only the simulator calls the physics forward model (tensors in and out).
"""

from .checks import DataWarning
from .load import load_scan
from .npz import read_npz, save_npz
from .ptychodus_h5 import PtychodusGeometry, read_ptychodus, read_ptychodus_training, save_ptychodus
from .scan import ScanData, validate_scan

__all__ = [
    "DataWarning",
    "PtychodusGeometry",
    "ScanData",
    "load_scan",
    "read_npz",
    "read_ptychodus",
    "read_ptychodus_training",
    "save_npz",
    "save_ptychodus",
    "validate_scan",
]
