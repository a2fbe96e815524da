"""The built-in reconstructors, registered through the same hook a third-party reconstructor plugin uses.

- ``pinn``: one pass of a trained network per group of patterns, stitched (milliseconds per scan on a GPU).
- ``iterative``: the LSQ-ML-style solver of :mod:`.iterative`, from ones or a given starting object;
  needs no model.
- ``pinn+iterative``: the network's object as the starting guess, then the iterative epochs: the network
  supplies the slowly converging low spatial frequencies, the solver the fidelity to this scan's data.
"""

from __future__ import annotations

import time

from .. import hookimpl
from .base import ProgressEvent, Reconstruction, Reconstructor, ReconstructRequest
from .iterative.config import IterativeConfig
from .network_options import NetworkOptions, NetworkThenIterativeOptions


def run_network(request: ReconstructRequest) -> Reconstruction:
    """The trained network's reconstruction of ``request.scan``."""
    from ..distributed import SINGLE_PROCESS
    from ..inference import reconstruct_scan

    def progress(done: int, total: int) -> None:
        request.report(ProgressEvent(done, total, "pattern"))

    options = NetworkOptions() if request.options is None else request.options
    if not isinstance(options, NetworkOptions):
        raise TypeError(f"the network takes NetworkOptions, not {type(options).__name__}")
    return reconstruct_scan(request.model, request.scan, batch_size=options.inference_batch_size,  # type: ignore[arg-type]
                            device=request.device, performance=request.performance,
                            distributed=request.distributed or SINGLE_PROCESS, progress=progress)


def run_iterative(request: ReconstructRequest) -> Reconstruction:
    from .iterative.solver import reconstruct_iterative

    return reconstruct_iterative(request)


def run_network_then_iterative(request: ReconstructRequest) -> Reconstruction:
    """Network object -> gain fitted to the data -> iterative epochs. The network's time is reported in
    the first history record (``seed_s``) and included in every ``elapsed_s``."""
    from dataclasses import replace

    from .iterative.solver import reconstruct_iterative
    from .seeding import seed_object

    started = time.perf_counter()
    network = run_network(request)
    start = seed_object(network.object, network.weights, request.scan, request.device)
    seed_s = time.perf_counter() - started

    def progress(event: ProgressEvent) -> None:
        request.report(replace(event, metrics={**event.metrics, "elapsed_s": event.metrics["elapsed_s"] + seed_s}))

    result = reconstruct_iterative(replace(request, progress=progress), start)
    history = tuple({**record, "elapsed_s": record["elapsed_s"] + seed_s, "seed_s": seed_s}
                    for record in result.history)
    return replace(result, history=history)


#: The built-ins, each with its options class, as the hook below registers them.
BUILTIN_RECONSTRUCTORS: tuple[Reconstructor, ...] = (
    Reconstructor("pinn", run_network, "trained network, one pass per pattern group (needs a model)",
                  needs_model=True, options=NetworkOptions),
    Reconstructor("iterative", run_iterative,
                  "LSQ-ML-style iterative solver on the forward model (object, optionally probe and positions)",
                  options=IterativeConfig),
    Reconstructor("pinn+iterative", run_network_then_iterative,
                  "the network's object as the starting guess, then iterative epochs (needs a model)",
                  needs_model=True, options=NetworkThenIterativeOptions),
)


@hookimpl
def ptychodus_torch_register_reconstructors() -> list[Reconstructor]:
    return list(BUILTIN_RECONSTRUCTORS)
