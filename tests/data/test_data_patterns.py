"""PatternStack: HDF5 patterns read in blocks equal the patterns read whole, bit for bit, and every bad
block (NaN, negative, absurd, unreadable) is one DataError naming the file and the rows."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from ptychodus_torch_plugin.data import load_scan, save_ptychodus
from ptychodus_torch_plugin.data import patterns as patterns_module
from ptychodus_torch_plugin.data.checks import DataWarning
from ptychodus_torch_plugin.data.patterns import PatternStack, patterns_to_amplitudes
from ptychodus_torch_plugin.data.simulate import SimulationConfig, simulate
from ptychodus_torch_plugin.errors import DataError


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Path:
    """A 300-pattern ptychodus pair with Poisson counts (uint16 in the file)."""
    folder = tmp_path_factory.mktemp("pair")
    scan = simulate(SimulationConfig(patch_size=16, n_positions=300, scan_kind="spiral", nphotons=1e4, seed=3))
    save_ptychodus(scan, folder / "diffraction.h5", folder / "product.h5")
    return folder


def _stack_file(path: Path, values: np.ndarray, chunks: tuple[int, ...] | None = None) -> Path:
    with h5py.File(path, "w") as h5:
        h5.create_dataset("patterns", data=values, chunks=chunks)
    return path


def test_streamed_scan_reads_the_same_bits_as_the_whole_scan(pair):
    whole = load_scan(pair, stream=False)
    streamed = load_scan(pair, stream=True)
    assert whole.in_memory and not streamed.in_memory
    stack = streamed.amplitudes
    assert isinstance(stack, PatternStack) and stack.shape == whole.amplitudes.shape and stack.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(stack), whole.amplitudes)
    rng = np.random.default_rng(0)
    for index in (rng.permutation(300)[:57], np.array([5, 5, 299, 0, 5]), np.arange(40, 290, 7)):
        np.testing.assert_array_equal(stack[index], whole.amplitudes[index])
    np.testing.assert_array_equal(stack[10:200:3], whole.amplitudes[10:200:3])
    np.testing.assert_array_equal(stack[-1], whole.amplitudes[-1])
    got = np.concatenate([block for _, block in stack.blocks(64)])
    np.testing.assert_array_equal(got, whole.amplitudes)
    np.testing.assert_array_equal(streamed.positions, whole.positions)


def test_streamed_scan_keeps_only_the_patterns_with_a_position(pair, tmp_path):
    """Patterns without a probe position are dropped (as ptychodus does); the streamed stack maps the kept
    patterns to their file rows, so its rows equal the whole read's."""
    for name in ("diffraction.h5", "product.h5"):
        (tmp_path / name).write_bytes((pair / name).read_bytes())
    with h5py.File(tmp_path / "product.h5", "r+") as h5:
        keep = np.ones(300, bool)
        keep[[0, 17, 18, 150, 299]] = False
        for key in ("probe_position_indexes", "probe_position_x_m", "probe_position_y_m"):
            values = h5[key][()][keep]
            del h5[key]
            h5.create_dataset(key, data=values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        whole = load_scan(tmp_path, stream=False)
        streamed = load_scan(tmp_path, stream=True)
    assert streamed.n_patterns == whole.n_patterns == 295
    np.testing.assert_array_equal(np.asarray(streamed.amplitudes), whole.amplitudes)
    np.testing.assert_array_equal(streamed.amplitudes[[0, 17, 294]], whole.amplitudes[[0, 17, 294]])


def test_a_stack_survives_pickling_and_reopens_its_file(pair):
    stack = load_scan(pair, stream=True).amplitudes
    copy = pickle.loads(pickle.dumps(stack))
    np.testing.assert_array_equal(copy[:5], stack[:5])


def test_npz_is_always_read_whole(tmp_path):
    from ptychodus_torch_plugin.data import save_npz

    save_npz(simulate(SimulationConfig(patch_size=16, n_positions=20)), tmp_path / "scan.npz")
    assert load_scan(tmp_path / "scan.npz", stream=True).in_memory


def test_float32_square_roots_of_whole_counts_equal_the_float64_ones():
    """The fast path (uint16 counts -> float32 sqrt) gives the bits the float64 path gives, for every
    uint16 value."""
    counts = np.arange(2**16, dtype=np.uint16).reshape(1, 256, 256)
    fast = patterns_to_amplitudes(counts, True, "here")
    slow = np.sqrt(counts.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize("bad, message", [
    (np.nan, "1 NaN or Inf"), (-3.0, "must be >= 0; found 1 negative"), (1e17, "implausible"),
])
def test_a_bad_value_in_a_later_block_names_the_file_and_the_rows(tmp_path, bad, message):
    values = np.ones((100, 8, 8), np.float32)
    values[73, 2, 2] = bad
    stack = PatternStack(_stack_file(tmp_path / "bad.h5", values, chunks=(10, 8, 8)))
    stack[:50]  # the good rows read fine
    with pytest.raises(DataError, match=message) as raised:
        for _ in stack.blocks(20):
            pass
    assert "bad.h5" in str(raised.value) and "patterns 60..79" in str(raised.value)


def test_negative_integer_counts_are_refused(tmp_path):
    values = np.ones((4, 8, 8), np.int16)
    values[1, 0, 0] = -1
    with pytest.raises(DataError, match="counts, which must be >= 0"):
        PatternStack(_stack_file(tmp_path / "neg.h5", values))[0:4]


@pytest.mark.parametrize("values, message", [
    (np.ones((4, 8, 6), np.uint16), "must be square"),
    (np.ones((0, 8, 8), np.uint16), "holds no patterns"),
    (np.ones((4, 8), np.uint16), "must have shape \\(M, H, W\\)"),
    (np.ones((4, 8, 8), np.complex64), "must be numeric"),
])
def test_malformed_datasets_are_refused_before_any_read(tmp_path, values, message):
    with pytest.raises(DataError, match=message):
        PatternStack(_stack_file(tmp_path / "odd.h5", values))


def test_a_corrupt_chunk_midway_is_a_data_error_naming_the_rows(tmp_path):
    """A compressed chunk overwritten with garbage (a bad disk block, a copy cut and patched): the rows
    before it read, the block holding it ends in one DataError."""
    path = tmp_path / "corrupt.h5"
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("patterns", data=rng.poisson(5, (64, 16, 16)).astype(np.uint16), chunks=(8, 16, 16),
                          compression="gzip")
    with h5py.File(path, "r") as h5:
        offset = h5["patterns"].id.get_chunk_info(5).byte_offset
    raw = bytearray(path.read_bytes())
    raw[offset : offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(raw))
    stack = PatternStack(path)
    stack[:40]
    with pytest.raises(DataError, match=r"cannot read patterns 40\.\.47 .*truncated or corrupt"):
        stack[40:48]


def test_a_missing_compression_filter_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "lz4.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("patterns", data=np.ones((4, 8, 8), np.uint16), compression="gzip")
    monkeypatch.setattr(patterns_module.h5py.h5z, "filter_avail", lambda fid: False)
    with pytest.raises(DataError, match=r"\[hdf5\]"):
        PatternStack(path)


def test_a_truncated_diffraction_file_is_one_data_error(pair, tmp_path):
    raw = (pair / "diffraction.h5").read_bytes()
    (tmp_path / "diffraction.h5").write_bytes(raw[: len(raw) * 2 // 3])
    (tmp_path / "product.h5").write_bytes((pair / "product.h5").read_bytes())
    with pytest.raises(DataError, match="diffraction.h5"):
        scan = load_scan(tmp_path, stream=True)
        np.asarray(scan.amplitudes)


@pytest.mark.parametrize("compression", ["Bitshuffle", "LZ4", "Blosc", "Zstd"])
def test_beamline_compressions_open_through_hdf5plugin(tmp_path, compression):
    """Detector software writes bitshuffle/LZ4 (Eiger, Jungfrau), Blosc or Zstandard; hdf5plugin (extra
    ``hdf5``) registers the filters and the patterns read as written."""
    hdf5plugin = pytest.importorskip("hdf5plugin")
    values = np.random.default_rng(2).poisson(3, (40, 16, 16)).astype(np.uint16)
    path = tmp_path / f"{compression}.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("patterns", data=values, chunks=(1, 16, 16), **getattr(hdf5plugin, compression)())
    stack = PatternStack(path)
    np.testing.assert_array_equal(np.asarray(stack), np.sqrt(values.astype(np.float64)).astype(np.float32))


@pytest.mark.parametrize("side, dtype", [(16, np.uint16), (15, np.uint32), (8, np.float32)])
def test_fft_layout_is_numpys_ifftshift_done_while_converting(tmp_path, side, dtype):
    """The streamed solver asks for patterns with the zero frequency at pixel 0; the four-block copy must be
    numpy's ifftshift (odd sides included, where the centre is pixel N//2)."""
    values = np.random.default_rng(5).poisson(7, (30, side, side)).astype(dtype)
    stack = PatternStack(_stack_file(tmp_path / "shift.h5", values))
    index = np.array([3, 29, 0, 3])
    np.testing.assert_array_equal(stack.read(index, fft_layout=True),
                                  np.fft.ifftshift(stack.read(index), axes=(-2, -1)))


def test_large_reads_go_in_steps_into_one_array(pair, monkeypatch):
    """A read larger than READ_ROWS_BYTES is done in steps written into one output (no whole copy in the
    file's dtype), with the same values."""
    stack = load_scan(pair, stream=True).amplitudes
    whole = stack[:]
    monkeypatch.setattr(patterns_module, "READ_ROWS_BYTES", 7 * 16 * 16 * 4)
    calls = []
    original = PatternStack._read_rows
    monkeypatch.setattr(PatternStack, "_read_rows", lambda self, rows: calls.append(rows.size) or original(self, rows))
    np.testing.assert_array_equal(stack[:], whole)
    assert max(calls) == 7 and sum(calls) == 300
