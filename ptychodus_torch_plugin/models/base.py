"""What a model-type plugin registers: a named recipe for a generator network and its training loss.

:class:`TrainableModel` is the contract the trainer and ``inference.py`` rely on, written down so that
a type checker (and a plugin author) sees it; the built-in ``PtychoModel`` satisfies it structurally.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from torch import Tensor, nn

    from ..config import ModelConfig


@runtime_checkable
class TrainableModel(Protocol):
    """What a model type's ``create`` returns: an ``nn.Module`` with these members."""

    config: ModelConfig
    """The model configuration it was built from (N, gridsize, ...); stored in the model file."""

    @property
    def scale(self) -> Tensor:
        """Intensity scale s: measured amplitudes / s are the network's inputs."""

    def __call__(self, amplitudes: Tensor) -> Tensor:
        """(B, C, N, N) measured amplitudes -> (B, C, N, N) complex object patches."""

    def training_loss(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The loss of one batch (``amplitudes``, ``offsets``, ... from ``training.data``)."""

    def loss_from_patches(self, patches: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        """The loss for given network output (the trainer runs the network pass separately, for DDP)."""

    def illumination(self) -> Tensor:
        """(N, N) weight of each patch pixel when stitching (probe intensity)."""

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def to(self, *args: Any, **kwargs: Any) -> Any: ...

    def eval(self) -> Any: ...

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any: ...


class ModelFactory(Protocol):
    def __call__(self, config: ModelConfig, probe: Tensor, intensity_scale: float,
                 canvas_size: int = 0) -> TrainableModel: ...


@dataclass(frozen=True)
class ModelType:
    """A model type offered by name (``--model pinn``), as returned by ``ptychodus_torch_register_model_types``."""

    name: str
    create: ModelFactory
    """Build the trainable model from the model configuration, the probe (modes, N, N), the training
    scan's intensity scale and the side of the overlap canvas (gridsize > 1)."""
    description: str = ""
    needs_ground_truth: bool = False
    """True for supervised types: training data must carry the true object."""

