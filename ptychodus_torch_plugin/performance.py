"""Speed options for the network pass: bf16 autocast, channels_last, ``torch.compile``, CUDA graphs.

Each option is either chosen per device (``auto``) or asked for explicitly, and every one of them leaves the
CPU path exactly as it was unless the user opts in. The physics (FFTs, stitching, losses) always runs in
float32/complex64: only the generator's convolutions see bf16, because the generator already returns
``torch.polar`` of float32 amplitude and phase.

Why the defaults are what they are:

- ``precision=auto`` is bf16 for *inference* on a CUDA device that supports it, and float32 everywhere else.
  Inference in bf16 changes the reconstruction by far less than the network's own error (the benchmark
  prints the SSIM difference against float32); bf16 *training* is opt-in (``--precision bf16``) until its
  effect on convergence has been measured on a GPU.
- ``channels_last=auto`` is on for CUDA (cuDNN's NHWC kernels are faster, most of all in bf16) and off on
  the CPU, where it measured no gain.
- ``compile`` is opt-in: the first call compiles for tens of seconds, which only pays off on long runs.
  When compilation fails (no C++ compiler, an unsupported backend), the run warns once and goes on eagerly.
- ``cuda_graphs`` is opt-in and inference-only: it replays one captured network pass for fixed-size chunks
  (the last chunk is padded), removing the per-kernel launch cost that dominates small-N batches.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from .config import PerformanceConfig
from .errors import ConfigError

Purpose = Literal["training", "inference"]
Forward = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class ResolvedPerformance:
    """The options as they apply to one device and one purpose (no ``auto`` left)."""

    bf16: bool
    channels_last: bool
    compile: bool
    cuda_graphs: bool

    def describe(self) -> str:
        parts = ["bf16" if self.bf16 else "fp32"]
        parts += [name for name, on in (("channels_last", self.channels_last), ("compile", self.compile),
                                        ("cuda_graphs", self.cuda_graphs)) if on]
        return "+".join(parts)


def _bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return device.type == "cpu"


def resolve(config: PerformanceConfig | None, device: torch.device, purpose: Purpose) -> ResolvedPerformance:
    """Turn ``auto`` into concrete choices for ``device``; refuse combinations the device cannot run."""
    config = config or PerformanceConfig()
    config.validate()
    if config.precision == "auto":
        bf16 = purpose == "inference" and device.type == "cuda" and _bf16_supported(device)
    else:
        bf16 = config.precision == "bf16"
        if bf16 and not _bf16_supported(device):
            raise ConfigError(f"--precision bf16 is not supported on {device}; use --precision fp32")
    channels_last = device.type == "cuda" if config.channels_last is None else bool(config.channels_last)
    if config.cuda_graphs and device.type != "cuda":
        raise ConfigError(f"--cuda-graphs needs a CUDA device, but this run uses {device}; drop --cuda-graphs")
    return ResolvedPerformance(bf16=bf16, channels_last=channels_last, compile=bool(config.compile),
                               cuda_graphs=bool(config.cuda_graphs) and purpose == "inference")


def autocast(device: torch.device, options: ResolvedPerformance) -> contextlib.AbstractContextManager[None]:
    """bf16 autocast for the network pass when asked for, a no-op otherwise.

    The weight cache is disabled so the same context works inside a CUDA-graph capture.
    """
    if not options.bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=False)


def set_conv_memory_format(module: nn.Module, memory_format: torch.memory_format) -> nn.Module:
    """Lay out every convolution's weights in ``memory_format``, in place. Only convolutions: other 4-D
    tensors (the probe, stored as (modes, N, N, re/im)) must keep their layout."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            layer.to(memory_format=memory_format)
    return module


def conv_memory_format(module: nn.Module) -> torch.memory_format | None:
    """The layout of the convolution weights (None without convolutions). Weights that are contiguous in both
    layouts (one input channel, 1x1 kernels) say nothing and are skipped."""
    found = False
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            found = True
            nhwc = layer.weight.is_contiguous(memory_format=torch.channels_last)
            nchw = layer.weight.is_contiguous()
            if nhwc != nchw:
                return torch.channels_last if nhwc else torch.contiguous_format
    return torch.contiguous_format if found else None


def apply_memory_format(module: nn.Module, options: ResolvedPerformance) -> nn.Module:
    """Convert the convolution weights to channels_last in place (a no-op when not asked for)."""
    if options.channels_last:
        set_conv_memory_format(module, torch.channels_last)
    return module


def as_input(amplitudes: Tensor, options: ResolvedPerformance) -> Tensor:
    """Lay out a (B, C, N, N) input as the network's weights expect."""
    if options.channels_last:
        return amplitudes.contiguous(memory_format=torch.channels_last)
    return amplitudes


def compile_or_eager(module: nn.Module, trial: Callable[[Forward], None], *, what: str) -> Forward:
    """``torch.compile(module)``, exercised once by ``trial``; the eager module if that fails.

    Compilation is lazy, so a missing compiler or an unsupported operator only shows at the first call;
    running ``trial`` here (a forward pass, plus a backward pass when training) turns such a failure into a
    single warning instead of a crash in the middle of the run.
    """
    try:
        compiled = torch.compile(module)
        trial(compiled)
    except Exception as exc:  # noqa: BLE001 - any compiler failure means: run eagerly
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        warnings.warn(f"torch.compile of the {what} failed ({type(exc).__name__}: {first_line}); running "
                      "eagerly", RuntimeWarning, stacklevel=2)
        return module
    return compiled


class GraphedForward:
    """One network pass captured in a CUDA graph for a fixed batch shape, replayed per chunk.

    Inputs with fewer groups than the captured batch are copied into the front of the static input (the rest
    is zeroed) and the matching front of the static output is returned. The returned tensor is the graph's
    own output buffer: it is overwritten by the next call, so consume it (e.g. stitch it) before that.
    """

    def __init__(self, forward: Forward, example: Tensor, warmup: int = 3) -> None:
        if example.device.type != "cuda":
            raise ConfigError("CUDA graphs need the input on a CUDA device")
        self.static_input = torch.zeros_like(example)
        stream = torch.cuda.Stream(device=example.device)
        stream.wait_stream(torch.cuda.current_stream(example.device))
        with torch.cuda.stream(stream), torch.no_grad():
            for _ in range(warmup):  # lets cuDNN pick its algorithms outside the capture
                forward(self.static_input)
        torch.cuda.current_stream(example.device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            self.static_output = forward(self.static_input)

    @property
    def batch_size(self) -> int:
        return int(self.static_input.shape[0])

    def __call__(self, amplitudes: Tensor) -> Tensor:
        count = amplitudes.shape[0]
        if count > self.batch_size:
            raise ValueError(f"a chunk of {count} groups does not fit the captured batch of {self.batch_size}")
        self.static_input[:count].copy_(amplitudes)
        if count < self.batch_size:
            self.static_input[count:].zero_()
        self.graph.replay()
        return self.static_output[:count]


@contextlib.contextmanager
def inference_forward(model: nn.Module, device: torch.device, options: ResolvedPerformance,
                      example: Tensor) -> Iterator[Forward]:
    """A callable (B, C, N, N) amplitudes -> (B, C, N, N) complex patches for inference, with the options
    applied. The model's memory format is restored afterwards, so a model kept by the caller (e.g. inside
    ptychodus between reconstructions, or the trainer's between epochs) is left as it was found."""
    previous = conv_memory_format(model)
    apply_memory_format(model, options)

    def with_options(network: Forward) -> Forward:
        def forward(x: Tensor) -> Tensor:
            with autocast(device, options):
                return network(as_input(x, options))
        return forward

    def trial(fn: Forward) -> None:
        with torch.no_grad(), autocast(device, options):
            fn(as_input(example, options))

    try:
        network = compile_or_eager(model, trial, what="network (inference)") if options.compile else model
        forward = with_options(network)
        yield GraphedForward(forward, example) if options.cuda_graphs else forward
    finally:
        if options.channels_last and previous is not None:
            set_conv_memory_format(model, previous)
