"""Simulate a ptychography dataset with ground truth, using the project's own forward model.

Why through :mod:`ptychodus_torch_plugin.physics`: the simulated counts must be exactly what the
reconstruction's forward model predicts from the true object and probe, so a convention slip (shift sign,
FFT centring) shows up as a failed round trip instead of being copied into both sides. The model is
:func:`~ptychodus_torch_plugin.physics.scan_model.scan_amplitudes`: the object read on its own pixel grid,
the probe shifted by each position's sub-pixel remainder (what a real sample does, and what ptychodus and
pty-chi assume).

Why two passes over blocks of patterns (:mod:`.chunks`): the photon scale is the target over the mean total
intensity of *all* patterns, so pass 1 computes only each pattern's total; pass 2 recomputes each block,
scales it and draws its Poisson noise from the one noise stream. Memory then stays bounded whatever the
number of patterns, and the data are bit for bit those of the whole-array computation.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...errors import ConfigError
from ...memory import available_ram
from ..npz import save_npz
from ..ptychodus_h5 import DIFFRACTION_FILE_NAME, PRODUCT_FILE_NAME
from ..ptychodus_write import PtychodusWriter, counts_dtype, pattern_chunk_rows
from ..scan import ScanData
from .chunks import ForwardModel, blocks, intensity_totals
from .config import NOISELESS_PHOTONS, SimulationConfig
from .objects import make_object
from .probes import make_probe
from .scans import make_trajectory, place_in_object, required_object_size

#: Largest expected count in one pixel: ScanData refuses amplitudes above 1e8 = sqrt(1e16 counts).
MAX_PIXEL_COUNT = 1e16

#: An NPZ needs the whole float32 stack in memory and a copy of it while it is written; it is refused when
#: those exceed this share of the available memory (HDF5 is written in parts and has no such limit).
NPZ_MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class SimulatedFiles:
    """What :func:`simulate_to_files` wrote."""

    n_patterns: int
    patch_size: int
    object_shape: tuple[int, int]
    npz_path: Path | None
    ptychodus_dir: Path | None


class Simulation:
    """One simulated scan after pass 1: truth, positions, scaled probe; the patterns come block by block.

    :meth:`amplitude_blocks` may be iterated more than once: each time it restarts the noise stream, so every
    iteration yields the same data.
    """

    def __init__(self, config: SimulationConfig, rows: int | None = None) -> None:
        self.config = config
        object_seed, scan_seed, self._noise_seed = np.random.SeedSequence(config.seed).spawn(3)
        object_rng, scan_rng = np.random.default_rng(object_seed), np.random.default_rng(scan_seed)
        n = config.patch_size
        trajectory = make_trajectory(config.scan_kind, config.n_positions, config.step, config.grid)
        if config.object_size is None:
            shape = required_object_size(trajectory, n, config.jitter_px)
        else:
            shape = (config.object_size, config.object_size)
        self.positions = place_in_object(trajectory, shape, n, config.jitter_px, scan_rng)
        self.object = make_object(
            config.object_kind,
            shape,
            object_rng,
            lines_per_kpx=config.lines_per_kpx,
            correlation_px=config.grf_correlation_px,
            images=config.images,
        )
        unit_probe = make_probe(
            config.probe_kind,
            n,
            config.probe_radius,
            edge_px=config.probe_edge_px,
            focus_radius_px=config.probe_focus_radius_px,
            central_stop=config.probe_central_stop,
        )
        self.model = ForwardModel(self.object, unit_probe, self.positions)
        self.rows = rows or self.model.default_rows()
        pass1 = intensity_totals(self.model, self.rows)
        self.target = NOISELESS_PHOTONS if config.nphotons is None else float(config.nphotons)
        self.scale = self.target / float(np.mean(pass1.totals))
        self.probe = (unit_probe * np.sqrt(self.scale)).astype(np.complex64)
        #: Largest expected count of any pixel (the scaled noiseless intensity).
        self.largest_intensity = pass1.largest * self.scale
        if not self.largest_intensity <= MAX_PIXEL_COUNT:
            raise ConfigError(
                f"{self.target:g} photons per pattern put {self.largest_intensity:.3g} counts in the brightest "
                f"pixel, more than the {MAX_PIXEL_COUNT:.0e} any loader accepts; lower nphotons"
            )

    @property
    def n_patterns(self) -> int:
        return self.config.n_positions

    @property
    def patch_size(self) -> int:
        return self.config.patch_size

    @property
    def object_shape(self) -> tuple[int, int]:
        return int(self.object.shape[0]), int(self.object.shape[1])

    def largest_count(self) -> float | None:
        """A bound on every count the data can hold (None for noiseless data, whose counts are not whole).

        Poisson draws beyond lam + 10 sqrt(lam) + 10 have a probability below 1e-20 per pixel.
        """
        if self.config.nphotons is None:
            return None
        lam = self.largest_intensity
        return lam + 10.0 * math.sqrt(lam) + 10.0

    def amplitude_blocks(self, rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(start, float32 amplitudes) of consecutive blocks: sqrt of the scaled, noisy counts."""
        noise_rng = np.random.default_rng(self._noise_seed)
        for start, stop in blocks(self.n_patterns, rows or self.rows):
            intensity = self.model.intensity(start, stop)
            intensity *= self.scale
            counts = intensity if self.config.nphotons is None else noise_rng.poisson(intensity).astype(np.float64)
            yield start, np.sqrt(counts, out=counts).astype(np.float32)

    def amplitudes(self) -> np.ndarray:
        """The whole (M, N, N) float32 stack, filled block by block (no other copy of it)."""
        n = self.patch_size
        stack = np.empty((self.n_patterns, n, n), dtype=np.float32)
        for start, block in self.amplitude_blocks():
            stack[start : start + block.shape[0]] = block
        return stack

    def scan(self, amplitudes: np.ndarray) -> ScanData:
        """The in-memory :class:`ScanData` with these amplitudes."""
        return ScanData(
            amplitudes=amplitudes,
            probe=self.probe,
            positions=self.positions,
            object_truth=self.object,
            scan_index=np.zeros(self.n_patterns, dtype=np.int64),
            pixel_size_m=self.config.pixel_size_m,
            source=self.source,
        )

    @property
    def source(self) -> str:
        return "simulated: " + ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())

    def writer(self, folder: Path) -> PtychodusWriter:
        """A :class:`PtychodusWriter` for ``folder``'s diffraction.h5 + product.h5, dtype from the bound."""
        return PtychodusWriter(
            folder / DIFFRACTION_FILE_NAME,
            folder / PRODUCT_FILE_NAME,
            n_patterns=self.n_patterns,
            dtype=counts_dtype(self.largest_count()),
            probe=self.probe,
            positions=self.positions,
            object_shape=self.object_shape,
            object_truth=self.object,
            pixel_size_m=self.config.pixel_size_m,
            source=self.source,
        )


def simulate(config: SimulationConfig, *, rows: int | None = None) -> ScanData:
    """A :class:`ScanData` with ground-truth object, the probe that produced the counts, and positions.

    Independent random streams (object, scan, noise) are spawned from ``config.seed``, so changing the
    noise level does not change the object or the scan. ``rows`` sets the patterns per block (the data do
    not depend on it).
    """
    simulation = Simulation(config, rows)
    return simulation.scan(simulation.amplitudes())


def noiseless_intensity(obj: np.ndarray, probe: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """sum_k |F(P_k(x - p) * O(x))|^2, float64 (M, N, N), via the physics forward model (in float64)."""
    model = ForwardModel(obj, probe, positions)
    n = model.patch_size
    out = np.empty((model.n_patterns, n, n), dtype=np.float64)
    for start, stop in blocks(model.n_patterns, model.default_rows()):
        out[start:stop] = model.intensity(start, stop)
    return out


def simulate_to_files(
    config: SimulationConfig,
    npz_path: Path | str | None,
    ptychodus_dir: Path | str | None = None,
    *,
    rows: int | None = None,
) -> SimulatedFiles:
    """Simulate and write the NPZ layout, ptychodus's diffraction.h5 + product.h5 pair, or both.

    The HDF5 pair is written block by block as the patterns are simulated (atomically, see
    :class:`PtychodusWriter`), so any number of patterns fits; an NPZ holds the whole stack in memory and is
    refused when that would not fit (:func:`check_npz_fits`).
    """
    if npz_path is None and ptychodus_dir is None:
        raise ConfigError("nothing to write: give an NPZ file, a ptychodus folder, or both")
    if npz_path is not None:
        check_npz_fits(config)
    simulation = Simulation(config, rows)
    folder = None if ptychodus_dir is None else Path(ptychodus_dir)
    if npz_path is None:
        assert folder is not None
        _write_streamed(simulation, folder)
    else:
        amplitudes = simulation.amplitudes()
        save_npz(simulation.scan(amplitudes), npz_path)
        if folder is not None:
            _write_from_memory(simulation, folder, amplitudes)
    return SimulatedFiles(
        n_patterns=simulation.n_patterns,
        patch_size=simulation.patch_size,
        object_shape=simulation.object_shape,
        npz_path=None if npz_path is None else Path(npz_path),
        ptychodus_dir=folder,
    )


def _write_streamed(simulation: Simulation, folder: Path) -> None:
    """Simulate straight into the files, in blocks of whole HDF5 chunks where a block holds one or more
    (each chunk is then compressed and written once; smaller blocks wait in the writer's chunk cache)."""
    with simulation.writer(folder) as writer:
        rows = simulation.rows
        if rows >= writer.chunk_rows:
            rows -= rows % writer.chunk_rows
        for _, block in simulation.amplitude_blocks(rows):
            writer.write(block)


def _write_from_memory(simulation: Simulation, folder: Path, amplitudes: np.ndarray) -> None:
    with simulation.writer(folder) as writer:
        rows = pattern_chunk_rows(simulation.n_patterns, simulation.patch_size, writer.dtype)
        for start, stop in blocks(simulation.n_patterns, rows * 16):
            writer.write(amplitudes[start:stop])


def check_npz_fits(config: SimulationConfig, available: int | None = None) -> None:
    """Refuse, before simulating, an NPZ whose stack (and the copy made while writing it) would take more
    than :data:`NPZ_MEMORY_SHARE` of the available memory."""
    available = available_ram() if available is None else available
    stack = config.n_positions * config.patch_size**2 * 4
    if available is None or 2 * stack <= NPZ_MEMORY_SHARE * available:
        return
    raise ConfigError(
        f"an NPZ of {config.n_positions} patterns of {config.patch_size}x{config.patch_size} needs the whole "
        f"stack in memory ({_gib(stack)}, twice that while it is written) but only {_gib(available)} is "
        "available; write ptychodus's HDF5 pair instead with --ptychodus-dir (it is written in parts, an NPZ "
        "cannot be) and leave out --output"
    )


def _gib(count: float) -> str:
    return f"{count / 1024**3:.1f} GiB"
