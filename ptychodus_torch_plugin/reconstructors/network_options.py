"""Settings of the network-based built-in reconstructors, declared as any plugin's options are."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import positive_int
from ..errors import ConfigError
from ..options import setting
from .iterative.config import IterativeConfig


@dataclass(frozen=True)
class NetworkOptions:
    """``pinn``: how the trained network is passed over the scan."""

    inference_batch_size: int = setting(256, parse=positive_int, minimum=1,
                                        help="groups per network pass (memory per pass grows with it)")

    def validate(self) -> None:
        if self.inference_batch_size < 1:
            raise ConfigError(f"--inference_batch_size must be at least 1, got {self.inference_batch_size}")


@dataclass(frozen=True)
class NetworkThenIterativeOptions(IterativeConfig, NetworkOptions):
    """``pinn+iterative``: the network's pass, then the iterative solver's epochs."""

    def validate(self) -> None:
        NetworkOptions.validate(self)
        IterativeConfig.validate(self)
