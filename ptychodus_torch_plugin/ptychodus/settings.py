"""Our settings as a ptychodus parameter group, mirroring the command line, and their translation into
the package's config dataclasses.

Why a ptychodus group: values then persist in ptychodus's INI settings file (section
``[PtychodusTorch]``) and are set in batch mode through ``settings.ini``, like every built-in library.
"""

from __future__ import annotations

from pathlib import Path

from ptychodus.api.settings import SettingsRegistry

from ..config import ExecutionConfig, ModelConfig, PerformanceConfig, TrainingConfig
from ..errors import ConfigError
from ..reconstructors.iterative.config import IterativeConfig

#: Settings-file section holding every parameter below.
GROUP_NAME = "PtychodusTorch"


def optional_path(value: Path) -> Path | None:
    """ptychodus stores an unset path as '' which reads back as '.'; both mean 'not set'."""
    return None if str(value) in ("", ".") else Path(value)


def parse_channels(text: str) -> tuple[int, ...] | None:
    """Comma-separated widths, or ``auto`` (derived from N, :func:`~..config.default_channels`)."""
    if text.strip().lower() == "auto":
        return None
    try:
        channels = tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError as error:
        raise ConfigError(f"[{GROUP_NAME}] channels must be comma-separated integers, got '{text}'") from error
    if not channels:
        raise ConfigError(f"[{GROUP_NAME}] channels must not be empty")
    return channels


def _channels_text(channels: tuple[int, ...] | None) -> str:
    return "auto" if channels is None else ",".join(str(c) for c in channels)


class TorchSettings:
    """The ``[PtychodusTorch]`` parameter group; one instance is shared by all our reconstructors."""

    def __init__(self, registry: SettingsRegistry) -> None:
        group = registry.create_group(GROUP_NAME)
        self.group = group
        # model (stored in the model file; used when training); defaults are ModelConfig's
        model = ModelConfig()
        training = TrainingConfig(train_data_file=Path(), output_dir=Path())
        self.patch_size = group.create_integer_parameter("patch_size", 0, minimum=0)  # 0 = from the data
        self.gridsize = group.create_integer_parameter("gridsize", model.gridsize, minimum=1)
        self.channels = group.create_string_parameter("channels", _channels_text(model.channels))
        self.loss = group.create_string_parameter("loss", model.loss)
        self.probe_trainable = group.create_boolean_parameter("probe_trainable", model.probe_trainable)
        self.scale_trainable = group.create_boolean_parameter("scale_trainable", model.scale_trainable)
        self.object_support = group.create_string_parameter("object_support", model.object_support)
        self.amplitude_max = group.create_real_parameter("amplitude_max", model.amplitude_max, minimum=0.0)
        self.canvas_weights = group.create_string_parameter("canvas_weights", model.canvas_weights)
        self.group_encoder = group.create_string_parameter("group_encoder", model.group_encoder)
        self.normalization = group.create_string_parameter("normalization", model.normalization)
        self.pool_last_stage = group.create_boolean_parameter("pool_last_stage", model.pool_last_stage)
        # training
        self.max_epochs = group.create_integer_parameter("max_epochs", training.max_epochs, minimum=1)
        self.batch_size = group.create_integer_parameter("batch_size", training.batch_size, minimum=1)
        self.learning_rate = group.create_real_parameter("learning_rate", training.learning_rate, minimum=0.0)
        self.scheduler = group.create_string_parameter("scheduler", training.scheduler)
        self.k_neighbours = group.create_integer_parameter("k_neighbours", training.k_neighbours, minimum=1)
        self.group_selection = group.create_string_parameter("group_selection", training.group_selection)
        self.n_images = group.create_integer_parameter("n_images", 0, minimum=0)  # 0 = one group per position
        self.seed = group.create_integer_parameter("seed", training.seed, minimum=0)
        self.deterministic = group.create_boolean_parameter("deterministic", training.deterministic)
        self.image_every_n_epochs = group.create_integer_parameter("image_every_n_epochs",
                                                                   training.image_every_n_epochs, minimum=0)
        self.output_dir = group.create_path_parameter("output_dir", Path())
        # execution
        self.accelerator = group.create_string_parameter("accelerator", "auto")
        self.logger = group.create_string_parameter("logger", "csv")
        # inference
        self.model_file = group.create_path_parameter("model_file", Path())
        self.inference_batch_size = group.create_integer_parameter("inference_batch_size", 256, minimum=1)
        # speed (docs/performance.md)
        self.precision = group.create_string_parameter("precision", "auto")
        self.compile = group.create_boolean_parameter("compile", False)
        # iterative reconstructors (iterative, pinn+iterative); defaults are IterativeConfig's
        iterative = IterativeConfig()
        self.iterative_epochs = group.create_integer_parameter("iterative_epochs", iterative.epochs, minimum=1)
        self.iterative_batch_size = group.create_integer_parameter("iterative_batch_size", iterative.batch_size,
                                                                   minimum=1)
        self.noise_model = group.create_string_parameter("noise_model", iterative.noise_model)
        self.momentum = group.create_real_parameter("momentum", iterative.momentum, minimum=0.0)
        self.damping = group.create_real_parameter("damping", iterative.damping, minimum=0.0)
        # 0 = off (ptychodus has no optional integers)
        self.refine_probe_from = group.create_integer_parameter("refine_probe_from", 0, minimum=0)
        self.refine_positions_from = group.create_integer_parameter("refine_positions_from", 0, minimum=0)
        self.tolerance = group.create_real_parameter("tolerance", iterative.tolerance, minimum=0.0)

    def model_config(self, model_type: str) -> ModelConfig:
        patch = self.patch_size.get_value()
        return ModelConfig(
            model_type=model_type,
            patch_size=patch or None,
            gridsize=self.gridsize.get_value(),
            channels=parse_channels(self.channels.get_value()),
            loss=self.loss.get_value().strip().lower(),
            probe_trainable=self.probe_trainable.get_value(),
            scale_trainable=self.scale_trainable.get_value(),
            object_support=self.object_support.get_value().strip().lower(),
            amplitude_max=self.amplitude_max.get_value(),
            canvas_weights=self.canvas_weights.get_value().strip().lower(),
            group_encoder=self.group_encoder.get_value().strip().lower(),
            normalization=self.normalization.get_value().strip().lower(),
            pool_last_stage=self.pool_last_stage.get_value(),
        )

    def training_config(self, model_type: str, train_data_file: Path, output_dir: Path) -> TrainingConfig:
        """``output_dir`` is ptychodus's output folder; the ``output_dir`` setting, when set, wins."""
        n_images = self.n_images.get_value()
        config = TrainingConfig(
            train_data_file=Path(train_data_file),
            output_dir=optional_path(self.output_dir.get_value()) or Path(output_dir),
            n_images=n_images or None,
            max_epochs=self.max_epochs.get_value(),
            batch_size=self.batch_size.get_value(),
            learning_rate=self.learning_rate.get_value(),
            scheduler=self.scheduler.get_value().strip().lower(),
            k_neighbours=self.k_neighbours.get_value(),
            group_selection=self.group_selection.get_value().strip().lower(),
            seed=self.seed.get_value(),
            deterministic=self.deterministic.get_value(),
            image_every_n_epochs=self.image_every_n_epochs.get_value(),
            quiet=True,  # no progress bars inside ptychodus; progress goes through TrainOutput
            model=self.model_config(model_type),
        )
        config.validate()
        return config

    def execution_config(self) -> ExecutionConfig:
        performance = PerformanceConfig(precision=self.precision.get_value().strip().lower() or "auto",
                                        compile=self.compile.get_value())
        performance.validate()
        return ExecutionConfig(accelerator=self.accelerator.get_value().strip() or "auto",
                               logger=self.logger.get_value().strip() or "csv",
                               run_name="ptychodus", performance=performance)

    def iterative_config(self) -> IterativeConfig:
        config = IterativeConfig(
            epochs=self.iterative_epochs.get_value(),
            batch_size=self.iterative_batch_size.get_value(),
            noise_model=self.noise_model.get_value().strip().lower(),
            momentum=self.momentum.get_value(),
            damping=self.damping.get_value(),
            refine_probe_from=self.refine_probe_from.get_value() or None,
            refine_positions_from=self.refine_positions_from.get_value() or None,
            tolerance=self.tolerance.get_value(),
        )
        config.validate()
        return config

    def model_file_path(self) -> Path | None:
        return optional_path(self.model_file.get_value())
