"""Fuzzing the readers of the files a run writes: ``load_checkpoint`` (``last.npz``) and ``Module.load``.

A valid file is damaged at random (bytes overwritten, the file cut short, or both), with the damage drawn more
often inside the parts that describe the data (zip headers, ``.npy`` headers, the checkpoint's JSON, the zip
directory) than inside the array bytes. Whatever comes out, the reader may only return or raise the library's
own error; anything else (BadZipFile, MemoryError, a crash) fails the test. Bounded by ``max_examples`` so that
both tests together take a few seconds. (Hypothesis is in the ``test`` extra.)
"""
import io
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minception import nn, optim
from minception.train import CheckpointError, load_checkpoint, save_checkpoint

FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _model():
    nn.init.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Dropout(0.2), nn.Linear(4, 3))


def _checkpoint_bytes(folder):
    model = _model()
    opt = optim.RMSProp(model.named_parameters(), lr=0.01)
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    opt.step()
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "position": {"epoch": 1, "step": 3},
             "list": [1.5, None, "x"]}
    return save_checkpoint(folder / "valid.npz", state) and (folder / "valid.npz").read_bytes()


def _weights_bytes(folder):
    _model().save(folder / "valid_weights.npz")
    return (folder / "valid_weights.npz").read_bytes()


def _structural_offsets(raw):
    """Byte offsets where the file describes its data: each member's local header, name and .npy header (the
    first 160 bytes of it), and the central directory at the end."""
    offsets = set()
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        for info in z.infolist():
            offsets.update(range(info.header_offset, min(len(raw), info.header_offset + 30 + len(info.filename) + 160)))
        directory = min(len(raw), max(i.header_offset for i in z.infolist()) + 30)
    offsets.update(range(len(raw) - 22 - 46 * 8, len(raw)))
    offsets.update(range(directory, len(raw)))
    return sorted(o for o in offsets if 0 <= o < len(raw))


def damage(raw):
    """A strategy of damaged copies of ``raw``: a few bytes overwritten, then perhaps cut short."""
    structural = _structural_offsets(raw)
    position = st.one_of(st.sampled_from(structural), st.integers(0, len(raw) - 1))
    edits = st.lists(st.tuples(position, st.integers(0, 255)), min_size=0, max_size=6)
    cut = st.one_of(st.none(), st.integers(0, len(raw) - 1))

    @st.composite
    def damaged(draw):
        data = bytearray(raw)
        for offset, value in draw(edits):
            data[offset] = value
        end = draw(cut)
        return bytes(data if end is None else data[:end])

    return damaged()


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("valid")
    return _checkpoint_bytes(folder), _weights_bytes(folder)


def test_a_damaged_checkpoint_gives_only_checkpoint_error(valid_files, tmp_path):
    raw = valid_files[0]
    path = tmp_path / "last.npz"

    @FUZZ
    @given(damage(raw))
    def check(data):
        path.write_bytes(data)
        try:
            state = load_checkpoint(path)
        except CheckpointError as e:
            assert "last.npz" in str(e)
            return
        assert isinstance(state, dict)          # damage in array bytes or in padding goes unnoticed: fine

    check()


def test_a_damaged_weights_file_gives_only_the_librarys_errors(valid_files, tmp_path):
    raw = valid_files[1]
    path = tmp_path / "model.npz"
    model = _model()

    @FUZZ
    @given(damage(raw))
    def check(data):
        path.write_bytes(data)
        try:
            model.load(path)
        except nn.StateFileError as e:
            assert "model.npz" in str(e)
        except nn.StateDictError:
            pass                                # a damaged name or shape: the keys no longer fit the model

    check()
