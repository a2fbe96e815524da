"""Settings of the iterative reconstructor, checked once before any work starts."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError

NOISE_MODELS: tuple[str, ...] = ("gaussian", "poisson")


@dataclass(frozen=True)
class IterativeConfig:
    """How the iterative reconstructor runs. Defaults were chosen by measurement (docs/findings.md,
    ITER-001): they reach pty-chi LSQML-100's quality in a fraction of its time on the simulated cases."""

    epochs: int = 100
    """Passes over every diffraction pattern."""
    batch_size: int = 50
    """Patterns per object update. Smaller batches update more often per epoch; larger ones use a GPU better.
    Under torchrun it is the whole job's batch: each of K ranks updates with batch_size // K patterns."""
    noise_model: str = "gaussian"
    """``gaussian`` (amplitude least squares, modulus replacement) or ``poisson`` (counts likelihood)."""
    damping: float = 0.3
    """Regularises the illumination normalisation of each update: divide by
    ``illumination + damping * max(illumination)`` (rPIE's alpha). Larger is slower and more robust in
    weakly lit or low-dose regions (ITER-005)."""
    step_size: float = 0.3
    """Fraction of the least-squares step length taken per batch. Below 1, each update chases the noise of
    one batch less, so the object settles closer to the fit of all patterns (pty-chi's LSQ-ML takes 0.45)."""
    momentum: float = 0.9
    """Epoch-level heavy-ball momentum on the object (0 = off). Low spatial frequencies of the phase
    converge slowly under local updates; momentum carries them along (ITER-002). It is dropped (restart)
    after any epoch whose amplitude error rose, which keeps low-dose data from diverging (ITER-005)."""
    refine_probe_from: int | None = None
    """First epoch (1-based) of probe refinement (every incoherent mode the data has); None = keep it."""
    refine_positions_from: int | None = None
    """First epoch (1-based) of position correction; None = trust the positions."""
    max_position_step_px: float = 0.1
    """Largest position change per epoch, pixels (a bad early object must not throw positions away)."""
    tolerance: float = 0.0
    """Stop when the loss improved by less than this fraction over the last ``patience`` epochs (0 = never)."""
    patience: int = 5
    seed: int = 0
    """Seeds the random batch order."""

    def validate(self) -> None:
        checks = [
            (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--iterative_batch_size must be at least 1, got {self.batch_size}"),
            (self.noise_model in NOISE_MODELS,
             f"unknown noise model '{self.noise_model}'; choose one of {', '.join(NOISE_MODELS)}"),
            (self.damping > 0, f"--damping must be positive, got {self.damping}"),
            (0 < self.step_size <= 2, f"--step_size must be in (0, 2], got {self.step_size}"),
            (0 <= self.momentum < 1, f"--momentum must be in [0, 1), got {self.momentum}"),
            (self.refine_probe_from is None or self.refine_probe_from >= 1,
             f"--refine_probe_from must be an epoch >= 1, got {self.refine_probe_from}"),
            (self.refine_positions_from is None or self.refine_positions_from >= 1,
             f"--refine_positions_from must be an epoch >= 1, got {self.refine_positions_from}"),
            (self.max_position_step_px > 0, f"--max_position_step must be positive, got {self.max_position_step_px}"),
            (self.tolerance >= 0, f"--tolerance must be >= 0, got {self.tolerance}"),
            (self.patience >= 1, f"--patience must be at least 1, got {self.patience}"),
            (self.seed >= 0, f"--seed must be >= 0, got {self.seed}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def probe_refined(self, epoch: int) -> bool:
        """Whether the probe is refined in ``epoch`` (0-based)."""
        return self.refine_probe_from is not None and epoch + 1 >= self.refine_probe_from

    def positions_refined(self, epoch: int) -> bool:
        return self.refine_positions_from is not None and epoch + 1 >= self.refine_positions_from
