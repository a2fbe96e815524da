"""Error types. Every failure caused by user input ends in one of these, so the command line can print a
single readable line and exit with status 2 instead of a traceback."""


class PtychodusTorchError(Exception):
    """Base of all errors this package raises on purpose; the message is meant for the end user."""


class ConfigError(PtychodusTorchError, ValueError):
    """A setting, flag or argument that cannot be honoured (unknown logger, unavailable accelerator...)."""


class DataError(PtychodusTorchError, ValueError):
    """A data file that is missing, malformed or inconsistent."""


class PluginError(PtychodusTorchError):
    """A plugin that cannot be loaded or that conflicts with another one."""


class MissingExtraError(PtychodusTorchError, ImportError):
    """An optional package is needed for the requested feature; the message names the extra to install."""

    def __init__(self, feature: str, package: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs the optional package '{package}', which is not installed. "
            f"Install it with: pip install 'ptychodus-torch-plugin[{extra}]'"
        )
        self.feature = feature
        self.package = package
        self.extra = extra


class ModelFileError(PtychodusTorchError):
    """A model or checkpoint file that is corrupt, unsafe or from an incompatible version."""
