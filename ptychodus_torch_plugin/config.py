"""Settings as plain dataclasses, passed down explicitly; nothing reads a global.

Each field is declared once with :func:`~.options.setting` (help, flag, choices, ptychodus exposure); the
command line's flags, ptychodus's settings group and the reading back of ``config.json`` are made from
these declarations. ``validate()`` turns nonsense (negative sizes, zero epochs, an unknown scheduler)
into one :class:`ConfigError` before any work starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .options import setting

SCHEDULERS: tuple[str, ...] = ("constant", "exponential", "cosine", "plateau")
LOSSES: tuple[str, ...] = ("poisson", "mae")
OBJECT_SUPPORTS: tuple[str, ...] = ("full", "central")
CANVAS_WEIGHTS: tuple[str, ...] = ("probe", "uniform")
GROUP_SELECTIONS: tuple[str, ...] = ("random", "compact")
GROUP_ENCODERS: tuple[str, ...] = ("joint", "shared")
NORMALIZATIONS: tuple[str, ...] = ("none", "group")
INPUT_TRANSFORMS: tuple[str, ...] = ("linear", "log")
MAX_CHANNELS = 4096
"""Widest encoder stage accepted; wider ones would not fit in memory at any useful N."""
MAX_LEARNING_RATE = 1.0
"""Adam diverges to NaN weights far below this; larger values are refused up front."""
MAX_SEED = 2**32 - 1
"""NumPy's seeds are 32-bit."""
FIRST_WIDTH = 16
"""Width of the first encoder stage when the widths are derived from N (each further stage doubles it)."""
BOTTLENECK = 4
"""Side of the encoder's last feature map when the widths are derived from N (QUALITY-003)."""


def positive_int(text: str) -> int:
    """An integer of at least 1, from a flag's text."""
    value = int(text)
    if value < 1:
        raise ValueError(f"must be a positive integer, got {text}")
    return value


def parse_channels(text: str) -> tuple[int, ...] | None:
    """Comma-separated encoder widths, or ``auto`` (None: derived from N by :func:`default_channels`)."""
    if str(text).strip().lower() == "auto":
        return None
    try:
        channels = tuple(int(part) for part in str(text).replace(" ", "").split(",") if part)
    except ValueError:
        raise ValueError(f"must be comma-separated integers such as 32,64,128, got {text!r}") from None
    if not channels:
        raise ValueError("must not be empty")
    return channels


def show_channels(channels: tuple[int, ...] | None) -> str:
    return "auto" if channels is None else ",".join(str(c) for c in channels)


def parse_auto_bool(text: str) -> bool | None:
    """``auto`` (None), or true/false."""
    from .options import parse_bool

    return None if str(text).strip().lower() in ("", "auto") else parse_bool(text)


def show_auto_bool(value: bool | None) -> str:
    return "auto" if value is None else ("true" if value else "false")


def default_channels(patch_size: int) -> tuple[int, ...]:
    """Encoder widths for N when none are given: 16, 32, 64, ... with one 2x stage per halving of N down
    to a 4 x 4 map (log2(N) - 2 stages for a power of two: 3 at N = 32, 4 at N = 64).

    Why depth follows N: every object pixel's information is spread over the whole far-field pattern, so
    the encoder must see all of it. At N = 64 a three-stage encoder (about 57 px of view) fits the training
    scans with an object unrelated to the truth (phase Pearson 0.03 on an unseen scan), and a fourth stage
    reconstructs it (0.76); QUALITY-003 in docs/findings.md.
    """
    stages = 1
    while stages < 8 and patch_size % 2 ** (stages + 1) == 0 and patch_size // 2 ** (stages + 1) >= BOTTLENECK:
        stages += 1
    return tuple(FIRST_WIDTH * 2**k for k in range(stages))


@dataclass(frozen=True)
class Grouping:
    """How a scan's positions are grouped for the network, as one thing: the group size, the neighbours a
    group is drawn from, how its members are chosen, and the seed. Stored in the model file (through
    :class:`ModelConfig`), so inference groups exactly as training did."""

    gridsize: int = 1
    k_neighbours: int = 7
    selection: str = "random"
    seed: int = 0

    def groups(self, positions: Any, n_groups: int | None = None) -> Any:
        """Index groups (G, gridsize**2) of ``positions`` (:func:`~.physics.grouping.group_neighbours`), an
        int64 array; ``n_groups`` None = one group per position."""
        from .physics.grouping import group_neighbours

        return group_neighbours(positions, self.gridsize, n_groups, self.seed, k_neighbours=self.k_neighbours,
                                selection=self.selection)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network; stored inside every model file."""

    model_type: str = setting("pinn", flag="--model-type", aliases=("--model",), ptychodus=False,
                              help="registered model type: pinn (unsupervised), supervised, or a plugin's")
    patch_size: int | None = setting(None, aliases=("--N",), parse=positive_int, unset=0, minimum=0,
                                     help="pattern size N (default: from the data)")
    """N; ``None`` = take it from the training data."""
    gridsize: int = setting(1, parse=positive_int, minimum=1, help="groups of gridsize² neighbouring patterns")
    k_neighbours: int = setting(7, parse=positive_int, minimum=1,
                                help="gridsize > 1: each group is a position and gridsize²-1 of its K nearest "
                                     "neighbours")
    group_selection: str = setting("random", choices=GROUP_SELECTIONS,
                                   help="gridsize > 1: members drawn at random from the K nearest neighbours, or "
                                        "the most compact group (2x2 squares on a raster)")
    """gridsize > 1: members drawn at ``random`` from the K nearest neighbours, or the ``compact`` choice
    (smallest spread: 2x2 squares on a raster); see ``physics.grouping.group_neighbours``."""
    group_seed: int | None = setting(None, unset=-1, minimum=-1,
                                     help="seed of the group draw (default: the training --seed; in ptychodus "
                                          "-1 = the training seed)")
    """Stored resolved: :class:`TrainingConfig` fills in its ``seed``, so a model file names the seed its
    groups were drawn with and inference draws the same way."""
    channels: tuple[int, ...] | None = setting(
        None, parse=parse_channels, show=show_channels, metavar="WIDTHS",
        help="encoder widths, comma-separated, or auto: 16,32,... with one stage per halving of N down to 4x4 "
             "(16,32,64 at N=32; 16,32,64,128 at N=64); default auto")
    """Encoder widths, one per 2x down-sampling stage (PtychoPINN uses 64, 128, 256 at N = 64). ``None``:
    derived from N by :func:`default_channels` (16, 32, 64 at N = 32; 16, 32, 64, 128 at N = 64) as soon
    as N is known, so a stored configuration always names its widths."""
    loss: str = setting("poisson", choices=LOSSES, help="training loss on the amplitudes")
    probe_trainable: bool = setting(False, help="refine the probe during training")
    scale_trainable: bool = setting(False, help="learn a gain on the intensity scale (output side of the loss)")
    """Learn a gain on the intensity scale in the loss (inputs stay normalised by each scan's own scale)."""
    object_support: str = setting("central", choices=OBJECT_SUPPORTS,
                                  help="decode the whole patch (full) or only its central N/2 x N/2, zero outside "
                                       "(central)")
    """``central``: decode only the central N/2 x N/2, zero outside (PtychoPINN's ``pad_object``); stitching
    and the overlap canvas then use only that square. ``full``: the whole N x N patch (before QUALITY-002)."""
    amplitude_max: float = setting(2.0, minimum=0.0, help="amplitude head = AMPLITUDE_MAX * sigmoid (PtychoPINN: 1)")
    """Amplitude head = amplitude_max * sigmoid (PtychoPINN: a plain sigmoid, 1)."""
    canvas_weights: str = setting("probe", choices=CANVAS_WEIGHTS,
                                  help="overlap-constraint average weighted by probe intensity (probe) or uniform "
                                       "over the decoded support (uniform)")
    """Overlap-constraint average: ``probe`` (probe intensity x support) or ``uniform`` (support only)."""
    group_encoder: str = setting("shared", choices=GROUP_ENCODERS,
                                 help="gridsize > 1: one network for the group's patterns as channels (joint) or "
                                      "one single-pattern network per pattern (shared)")
    """gridsize > 1: ``shared`` (each pattern through one single-pattern network; the group meets in the
    overlap constraint of the loss) or ``joint`` (one network sees the group's C patterns as channels, as in
    PtychoPINN; the default before QUALITY-002). Identical at gridsize 1."""
    normalization: str = setting("group", choices=NORMALIZATIONS,
                                 help="after every convolution: nothing (none, as PtychoPINN) or GroupNorm (group)")
    """After every convolution: ``group`` (GroupNorm, each sample on its own, so a patch never depends on
    the rest of its batch) or ``none`` (PtychoPINN's, and this package's before QUALITY-005)."""
    input_transform: str = setting("linear", choices=INPUT_TRANSFORMS,
                                   help="what the network sees of the amplitudes a (s: the model's input scale): "
                                        "a/s (linear) or log(1 + a/s) (log), which compresses a bright central "
                                        "spot against weak high-angle speckle")
    pool_last_stage: bool = setting(True, help="pool after the last encoder stage too (a 4x4 map at N=64) or not "
                                               "(8x8, one decoder stage fewer)")
    """``False``: the last encoder stage keeps its resolution (no 2x pooling after it), so the decoders start
    from a map twice as wide (8 x 8 at N = 64, as PtychoPINN's 64/128/256 encoder ends) and need one
    up-sampling stage fewer. ``True``: every stage pools (a 4 x 4 map at N = 64 with the derived widths)."""

    def __post_init__(self) -> None:
        if self.channels is None and self.patch_size is not None and self.patch_size >= 8:
            object.__setattr__(self, "channels", default_channels(self.patch_size))

    @property
    def widths(self) -> tuple[int, ...]:
        """The encoder widths; asking before N is known (``channels`` None, ``patch_size`` None) is a bug."""
        if self.channels is None:
            raise ConfigError("the encoder widths follow N, which is not known yet: give --channels or --patch_size")
        return self.channels

    def validate(self) -> None:
        if self.patch_size is not None and self.patch_size < 8:
            raise ConfigError(f"patch size N={self.patch_size} must be at least 8")
        if self.channels is not None:
            self._validate_channels()
        if self.gridsize < 1:
            raise ConfigError(f"gridsize must be at least 1, got {self.gridsize}")
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss '{self.loss}'; choose one of {', '.join(LOSSES)}")
        if self.object_support not in OBJECT_SUPPORTS:
            raise ConfigError(f"unknown object support '{self.object_support}'; choose one of "
                              f"{', '.join(OBJECT_SUPPORTS)}")
        if self.object_support == "central" and self.patch_size is not None and self.patch_size % 4:
            raise ConfigError(f"--object_support central needs N divisible by 4, got N={self.patch_size}")
        if not (0 < self.amplitude_max <= 100):
            raise ConfigError(f"--amplitude_max must be in (0, 100], got {self.amplitude_max}")
        if self.group_encoder not in GROUP_ENCODERS:
            raise ConfigError(f"unknown group encoder '{self.group_encoder}'; choose one of "
                              f"{', '.join(GROUP_ENCODERS)}")
        if self.input_transform not in INPUT_TRANSFORMS:
            raise ConfigError(f"unknown input transform '{self.input_transform}'; choose one of "
                              f"{', '.join(INPUT_TRANSFORMS)}")
        if self.normalization not in NORMALIZATIONS:
            raise ConfigError(f"unknown normalization '{self.normalization}'; choose one of {', '.join(NORMALIZATIONS)}")
        if not self.pool_last_stage and self.channels is not None and len(self.channels) < 2:
            raise ConfigError("an encoder whose last stage does not pool needs at least two stages")
        if self.canvas_weights not in CANVAS_WEIGHTS:
            raise ConfigError(f"unknown canvas weights '{self.canvas_weights}'; choose one of "
                              f"{', '.join(CANVAS_WEIGHTS)}")

    def _validate_channels(self) -> None:
        channels = self.widths
        if not channels or any(c < 1 or c > MAX_CHANNELS for c in channels):
            raise ConfigError(f"channels must be integers from 1 to {MAX_CHANNELS}, got {channels}")
        if len(channels) > 8:
            raise ConfigError(f"at most 8 encoder stages are supported, got {len(channels)}")
        if self.patch_size is not None and self.patch_size % (2 ** len(channels)) != 0:
            raise ConfigError(f"patch size N={self.patch_size} must be divisible by {2 ** len(channels)} "
                              "(one halving per encoder stage)")

    @property
    def n_channels(self) -> int:
        """Patterns per group, C = gridsize²."""
        return self.gridsize**2

    @property
    def grouping(self) -> Grouping:
        """The grouping of training and inference alike."""
        return Grouping(self.gridsize, self.k_neighbours, self.group_selection, self.group_seed or 0)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Rebuild from a stored record. Settings the record lacks (files written before they existed)
        take the value that reproduces how those files were made (:data:`LEGACY_MODEL_VALUES`), not
        today's default."""
        known = {f.name for f in fields(cls)}
        values = {**LEGACY_MODEL_VALUES, **{k: v for k, v in values.items() if k in known}}
        if values.get("channels") is not None:
            values["channels"] = tuple(int(c) for c in values["channels"])
        return cls(**values)


#: What a stored model configuration without these keys was built with (for the grouping keys: what
#: inference used before they were stored).
LEGACY_MODEL_VALUES: dict[str, Any] = {"object_support": "full", "amplitude_max": 2.0, "canvas_weights": "probe",
                                       "group_encoder": "joint", "normalization": "none", "k_neighbours": 7,
                                       "group_selection": "random", "group_seed": 0}


@dataclass(frozen=True)
class TrainingConfig:
    """How to train: data, optimisation, schedule, checkpoints."""

    train_data_file: Path | tuple[Path, ...] = setting(
        nargs="+", required=True, ptychodus=False,
        help="training scan(s) (NPZ, or ptychodus diffraction HDF5 with its product file); several scans of the "
             "same N and probe train one model, groups formed within each scan")
    """One training scan, or several (a list or tuple): groups are formed within each scan, each scan is
    normalised by its own intensity scale, and all must share N and the probe (see ``train_data_files``)."""
    output_dir: Path = setting(required=True,
                               help="run folders go to OUTPUT_DIR/lightning_logs/version_<N> (in ptychodus: "
                                    "empty = ptychodus's output folder)")
    test_data_file: Path | None = setting(None, ptychodus=False,
                                          help="validation scan; the final reconstruction is of this scan")
    n_images: int | None = setting(None, parse=positive_int, unset=0, minimum=0,
                                   help="groups sampled from the training scan per epoch (default: one per "
                                        "position)")
    """Groups sampled from the training scan per epoch; ``None`` = one group per position."""
    max_epochs: int = setting(50, minimum=1, help="training epochs")
    batch_size: int = setting(16, minimum=1, help="groups per optimiser step (of the whole job under torchrun)")
    learning_rate: float = setting(1e-3, aliases=("--lr",), minimum=0.0, help="Adam's learning rate")
    scheduler: str = setting("constant", choices=SCHEDULERS, help="learning-rate schedule")
    warmup_epochs: int = setting(0, minimum=0, help="linear warm-up epochs before the cosine schedule")
    """Linear warm-up epochs before the cosine schedule."""
    lr_gamma: float = setting(0.95, minimum=0.0, help="per-epoch factor of the exponential schedule; the "
                                                      "reduction factor of the plateau schedule")
    """Per-epoch factor of the exponential schedule; the reduction factor of reduce-on-plateau."""
    plateau_patience: int = setting(5, minimum=0, help="epochs without improvement before the plateau schedule "
                                                       "lowers the rate")
    early_stopping_patience: int | None = setting(None, unset=0, minimum=0,
                                                  help="stop after this many epochs without a better validation "
                                                       "loss (default: never; in ptychodus 0 = never)")
    """Stop after this many epochs without a better validation loss; ``None`` = never."""
    seed: int = setting(0, minimum=0, help="seed of the weights, the groups and the batch order")
    deterministic: bool = setting(False, help="seed everything and use deterministic algorithms (bit-identical "
                                              "CPU runs)")
    num_workers: int = setting(0, minimum=0, help="data-loader worker processes")
    image_every_n_epochs: int = setting(5, minimum=0, help="log amplitude/phase pictures every N epochs (0 = never)")
    resume: bool = setting(False, ptychodus=False,
                           help="continue the newest run in OUTPUT_DIR from its last checkpoint")
    quiet: bool = setting(False, ptychodus=False, help="no progress bar or per-epoch lines")
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        # One path stays one Path (settings, config.json and loggers see it unchanged); a list or tuple of
        # one path is that path; several become a tuple of Paths.
        files = self.train_data_file
        if isinstance(files, (list, tuple)):
            paths = tuple(Path(f) for f in files)
            object.__setattr__(self, "train_data_file", paths[0] if len(paths) == 1 else paths)
        elif isinstance(files, str):
            object.__setattr__(self, "train_data_file", Path(files))
        if self.model.group_seed is None:  # the groups are drawn with the training seed unless told otherwise
            object.__setattr__(self, "model", replace(self.model, group_seed=self.seed))

    @property
    def train_data_files(self) -> tuple[Path, ...]:
        """The training scans, always as a tuple."""
        files = self.train_data_file
        return tuple(files) if isinstance(files, tuple) else (Path(files),)

    def validate(self) -> None:
        self.model.validate()
        if not self.train_data_files:
            raise ConfigError("--train_data_file needs at least one file")
        checks = [
            (self.max_epochs >= 1, f"--max_epochs must be at least 1, got {self.max_epochs}"),
            (self.batch_size >= 1, f"--batch_size must be at least 1, got {self.batch_size}"),
            (self.n_images is None or self.n_images >= 1, f"--n_images must be at least 1, got {self.n_images}"),
            (0 < self.learning_rate <= MAX_LEARNING_RATE,
             f"--learning_rate must be in (0, {MAX_LEARNING_RATE:g}], got {self.learning_rate}"),
            (0 <= self.seed <= MAX_SEED, f"--seed must be from 0 to {MAX_SEED}, got {self.seed}"),
            (self.plateau_patience >= 0, f"--plateau_patience must be >= 0, got {self.plateau_patience}"),
            (self.image_every_n_epochs >= 0,
             f"--image_every_n_epochs must be >= 0 (0 = never), got {self.image_every_n_epochs}"),
            (self.scheduler in SCHEDULERS,
             f"unknown scheduler '{self.scheduler}'; choose one of {', '.join(SCHEDULERS)}"),
            (self.warmup_epochs >= 0, f"--warmup_epochs must be >= 0, got {self.warmup_epochs}"),
            (0 < self.lr_gamma <= 1, f"--lr_gamma must be in (0, 1], got {self.lr_gamma}"),
            (self.num_workers >= 0, f"--num-workers must be >= 0, got {self.num_workers}"),
            (self.model.k_neighbours >= self.model.n_channels - 1,
             f"--gridsize {self.model.gridsize} needs groups of {self.model.n_channels} positions, but each group "
             f"is drawn from a position's {self.model.k_neighbours} nearest neighbours (k_neighbours); use a "
             f"smaller gridsize or k_neighbours >= {self.model.n_channels - 1}"),
            (self.early_stopping_patience is None or self.early_stopping_patience >= 1,
             "--early_stopping_patience must be at least 1"),
            (self.model.group_selection in GROUP_SELECTIONS,
             f"unknown group selection '{self.model.group_selection}'; choose one of {', '.join(GROUP_SELECTIONS)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        check_output_dir(Path(self.output_dir))

    def flat(self) -> dict[str, Any]:
        """Flat, plain-typed view for loggers' hyperparameters and for checkpoint files."""
        values = asdict(self)
        model = values.pop("model")
        flat: dict[str, Any] = {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items()}
        if isinstance(self.train_data_file, tuple):  # several files: a list of strings
            flat["train_data_file"] = [str(f) for f in self.train_data_file]
        flat.update({f"model.{k}": (list(v) if isinstance(v, tuple) else v) for k, v in model.items()})
        return flat


def check_output_dir(path: Path) -> None:
    """The output folder, or its nearest existing ancestor, must be a folder (not a file)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = "" if candidate == path else f" (inside {candidate})"
                raise ConfigError(f"--output_dir {path} cannot be a folder: {candidate} is a file{where}")
            return


PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class PerformanceConfig:
    """How the network pass is run; none of it changes what is computed beyond rounding."""

    precision: str = setting("auto", choices=PRECISIONS,
                             help="network precision: auto (bf16 for CUDA inference, else fp32), fp32 or bf16")
    """``auto`` (bf16 for CUDA inference, else float32), ``fp32`` or ``bf16``."""
    channels_last: bool | None = setting(None, parse=parse_auto_bool, show=show_auto_bool,
                                         help="NHWC convolutions (default: on for CUDA, off on the CPU)")
    """NHWC memory format for the convolutions; ``None`` = on for CUDA, off elsewhere."""
    compile: bool = setting(False, help="torch.compile the network (slow first call; falls back to eager if it "
                                        "fails)")
    """``torch.compile`` the network (falls back to eager with a warning when compilation fails)."""
    cuda_graphs: bool = setting(False, help="replay the inference pass as a CUDA graph (CUDA only)")
    """Capture the inference pass in a CUDA graph (CUDA only; fixed-size chunks, the last one padded)."""

    def validate(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision '{self.precision}'; choose one of {', '.join(PRECISIONS)}")


@dataclass(frozen=True)
class ExecutionConfig:
    """Where and how a job runs, independent of the maths."""

    accelerator: str = setting("auto", help="auto, cpu, cuda, cuda:1, gpu, mps, or a plugin's")
    logger: str = setting("csv", help="csv, tensorboard, mlflow, none, or a plugin's")
    per_step_metrics: bool = setting(False, flag="--log-every-step", help="also log one row per optimiser step")
    experiment_name: str = setting("ptychodus-torch", help="experiment the run is logged under (MLflow)")
    run_name: str = setting("ptychodus-torch", ptychodus=False, help="name of the run in the logger")
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)


def run_record(training: TrainingConfig, execution: ExecutionConfig) -> dict[str, Any]:
    """A training run's settings as ``config.json`` records them (and ``--config`` reads them back): the
    training fields, ``model.*``, the execution fields and ``performance.*``, plain-typed."""
    performance = asdict(execution.performance)
    execution_values = {k: v for k, v in asdict(execution).items() if k != "performance"}
    return {**training.flat(), **execution_values, **{f"performance.{k}": v for k, v in performance.items()}}
