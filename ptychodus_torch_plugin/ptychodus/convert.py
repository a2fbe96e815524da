"""ptychodus products <-> our :class:`ScanData` and reconstructions.

Positions arrive in metres and leave as metres untouched; the metre -> pixel step uses the input
object's own geometry (pixel pitch, centre at pixel (W-1)/2) plus our +0.5 px probe-centre convention
for even N (:mod:`..data.geometry`). The output object keeps the input's pixel geometry, centre and
layer count, so ptychodus can overlay it on the input product unchanged. A reconstructor that refined the
probe or corrected the positions hands those back too (positions through the same geometry, inverted).
"""

from __future__ import annotations

import numpy as np
from ptychodus.api.object import Object
from ptychodus.api.probe import ProbeSequence
from ptychodus.api.probe_positions import ProbePosition, ProbePositionSequence
from ptychodus.api.product import Product
from ptychodus.api.reconstruct import ReconstructInput

from ..data.geometry import ObjectFrame, metres_to_positions, positions_to_metres
from ..data.scan import ScanData
from ..errors import DataError
from ..reconstructors.base import Reconstruction


def object_frame(obj: Object) -> ObjectFrame:
    """Where the input object sits in the world, as our geometry module wants it."""
    geometry = obj.get_geometry()
    return ObjectFrame(height_px=geometry.height_px, width_px=geometry.width_px,
                       pixel_height_m=geometry.pixel_height_m, pixel_width_m=geometry.pixel_width_m,
                       center_y_m=geometry.center_y_m, center_x_m=geometry.center_x_m)


def input_to_scan(parameters: ReconstructInput, *, with_truth: bool = False) -> ScanData:
    """The ptychodus input as a :class:`ScanData` on the input object's pixel grid.

    Patterns are counts (ptychodus) and become amplitudes (sqrt). ``with_truth`` keeps the input object
    as ground truth (training data for supervised models); a constant object reads as 'no truth'.
    """
    product = parameters.product
    patterns = np.asarray(parameters.diffraction_patterns)
    if patterns.ndim != 3 or patterns.shape[0] == 0:
        raise DataError(f"ptychodus gave diffraction patterns of shape {patterns.shape}; expected (M, N, N)")
    counts = patterns.astype(np.float64)
    if np.any(counts < 0):
        raise DataError("ptychodus gave negative diffraction counts")
    n = patterns.shape[-1]
    obj = product.object_
    frame = object_frame(obj)
    positions = metres_to_positions(product.probe_positions.get_coordinates_y_m(),
                                    product.probe_positions.get_coordinates_x_m(), frame, n)
    probe = np.asarray(product.probes.get_probe_no_opr().get_array())
    truth = None
    if with_truth:
        flat = np.asarray(obj.get_layers_flattened())
        truth = None if np.allclose(flat, flat.flat[0]) else flat
    bad = np.asarray(parameters.bad_pixels, dtype=bool) if parameters.bad_pixels is not None else None
    if bad is not None and bad.shape != (n, n):
        bad = None
    pixel = frame.pixel_width_m if np.isclose(frame.pixel_width_m, frame.pixel_height_m) else None
    return ScanData(
        amplitudes=np.sqrt(counts).astype(np.float32),
        probe=probe,
        positions=positions,
        object_truth=truth,
        object_shape=(frame.height_px, frame.width_px),
        bad_pixels=bad,
        pixel_size_m=pixel,
        photon_energy_eV=product.metadata.photon_energy_eV or None,
        detector_distance_m=product.metadata.detector_distance_m or None,
        source=f"ptychodus product '{product.metadata.name}'",
    )


def reconstruction_to_product(recon: Reconstruction, product: Product) -> Product:
    """The input product with its object replaced by ours on the same grid.

    Pixels no pattern touched (weight 0) keep the input object's values. A multi-layer input keeps its
    layer count and spacing: our (projected) object goes into layer 0, the other layers become 1.
    """
    obj = product.object_
    layers = np.asarray(obj.get_array())
    result = np.asarray(recon.object, dtype=np.complex64)
    if result.shape != layers.shape[-2:]:
        raise DataError(f"reconstructed object {result.shape} does not match the input grid {layers.shape[-2:]}")
    measured = np.asarray(recon.weights) > 0
    flat = np.asarray(obj.get_layers_flattened()).astype(np.complex64)
    result = np.where(measured, result, flat)
    array = np.ones(layers.shape, dtype=np.complex64)
    array[0] = result
    new_object = Object(array=array, pixel_geometry=obj.get_pixel_geometry().copy(),
                        center=obj.get_center().copy(), layer_spacing_m=list(obj.layer_spacing_m))
    probes = product.probes
    if recon.probe is not None:
        probes = ProbeSequence(np.asarray(recon.probe, np.complex64)[np.newaxis], None,
                               product.probes.get_pixel_geometry())
    positions = product.probe_positions
    if recon.positions is not None:
        patch_size = int(product.probes.get_array().shape[-1])
        y_m, x_m = positions_to_metres(recon.positions, object_frame(obj), patch_size)
        positions = ProbePositionSequence([ProbePosition(point.index, float(x), float(y))
                                           for point, y, x in zip(product.probe_positions, y_m, x_m)])
    return Product(metadata=product.metadata, probe_positions=positions, probes=probes,
                   object_=new_object, losses=product.losses)
