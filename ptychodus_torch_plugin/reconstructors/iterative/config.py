"""Settings of the iterative reconstructor, checked once before any work starts."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError
from ...options import setting

NOISE_MODELS: tuple[str, ...] = ("gaussian", "poisson")


@dataclass(frozen=True)
class IterativeConfig:
    """How the iterative reconstructor runs. Defaults were chosen by measurement (docs/findings.md,
    ITER-001): they reach pty-chi LSQML-100's quality in a fraction of its time on the simulated cases."""

    epochs: int = setting(100, ptychodus="iterative_epochs", minimum=1,
                          help="iterative epochs (passes over every pattern)")
    """Passes over every diffraction pattern."""
    batch_size: int = setting(50, flag="--iterative-batch-size", ptychodus="iterative_batch_size", minimum=1,
                              help="patterns per iterative update (under torchrun: of the whole job, shared by "
                                   "the ranks)")
    """Patterns per object update. Smaller batches update more often per epoch; larger ones use a GPU better.
    Under torchrun it is the whole job's batch: each of K ranks updates with batch_size // K patterns."""
    noise_model: str = setting("gaussian", choices=NOISE_MODELS, help="noise model of the data misfit")
    """``gaussian`` (amplitude least squares, modulus replacement) or ``poisson`` (counts likelihood)."""
    damping: float = setting(0.3, minimum=0.0, help="illumination-normalisation damping (rPIE's alpha)")
    """Regularises the illumination normalisation of each update: divide by
    ``illumination + damping * max(illumination)`` (rPIE's alpha). Larger is slower and more robust in
    weakly lit or low-dose regions (ITER-005)."""
    step_size: float = setting(0.3, minimum=0.0, help="fraction of the least-squares step taken per batch")
    """Fraction of the least-squares step length taken per batch. Below 1, each update chases the noise of
    one batch less, so the object settles closer to the fit of all patterns (pty-chi's LSQ-ML takes 0.45)."""
    momentum: float = setting(0.9, minimum=0.0, help="epoch-level momentum on the object, 0 = off")
    """Epoch-level heavy-ball momentum on the object (0 = off). Low spatial frequencies of the phase
    converge slowly under local updates; momentum carries them along (ITER-002). It is dropped (restart)
    after any epoch whose amplitude error rose, which keeps low-dose data from diverging (ITER-005)."""
    refine_probe_from: int | None = setting(None, unset=0, minimum=0,
                                            help="refine the probe (all its modes) from this epoch on (default: "
                                                 "never; in ptychodus 0 = never)")
    """First epoch (1-based) of probe refinement (every incoherent mode the data has); None = keep it."""
    refine_positions_from: int | None = setting(None, unset=0, minimum=0,
                                                help="correct the scan positions from this epoch on (default: "
                                                     "never; in ptychodus 0 = never)")
    """First epoch (1-based) of position correction; None = trust the positions."""
    max_position_step_px: float = setting(0.1, flag="--max-position-step", ptychodus="max_position_step",
                                          minimum=0.0, help="largest position change per epoch, pixels")
    """Largest position change per epoch, pixels (a bad early object must not throw positions away)."""
    tolerance: float = setting(0.0, minimum=0.0,
                               help="stop when the amplitude error improved by less than this fraction over "
                                    "--patience epochs (0 = run every epoch)")
    """Stop when the loss improved by less than this fraction over the last ``patience`` epochs (0 = never)."""
    patience: int = setting(5, minimum=1, help="epochs over which --tolerance is judged")
    saturation_counts: float | None = setting(None, unset=0.0, minimum=0.0,
                                              help="intensity (counts) at or above which a detector pixel is "
                                                   "saturated: such pixels are left out of the fit, pattern by "
                                                   "pattern (default: none; in ptychodus 0 = none)")
    """A saturated pixel reads less than the light that reached it, so fitting it would pull the model's
    brightest pixels down; left unconstrained, its value comes from the rest of the scan (as a masked
    pixel's does)."""
    seed: int = setting(0, flag="--iterative-seed", ptychodus="iterative_seed", minimum=0,
                        help="seed of the random batch order")
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
            (self.saturation_counts is None or self.saturation_counts > 0,
             f"--saturation-counts must be a positive intensity (counts), got {self.saturation_counts}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def probe_refined(self, epoch: int) -> bool:
        """Whether the probe is refined in ``epoch`` (0-based)."""
        return self.refine_probe_from is not None and epoch + 1 >= self.refine_probe_from

    def positions_refined(self, epoch: int) -> bool:
        return self.refine_positions_from is not None and epoch + 1 >= self.refine_positions_from
