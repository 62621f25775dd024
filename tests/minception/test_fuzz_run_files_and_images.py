"""Hypothesis fuzzes the last two kinds of untrusted input: a run folder's log files read back on ``--resume``,
and the images ``preprocess`` decodes. Whatever the bytes, the reader returns or raises the library's own error
(``RunFileError``, ``ImageError``), nothing else."""
import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minception.pretrained import ImageError, preprocess
from minception.train.run_folder import METRICS_FIELDS, TRAIN_LOG_FIELDS, RunFileError, read_records

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                         max_size=3), max_leaves=8)
GOOD_METRICS = {"model": "inception_resnet_v2", "epoch": 1, "step": 10, "train_loss": 2.3, "train_acc": 0.1,
                "lr": 0.02, "images_per_s": 100.0, "elapsed_s": 3.0}


def _lines(records):
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


@FUZZ
@given(raw=st.binary(max_size=400))
def test_log_files_of_random_bytes(tmp_path, raw):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(raw)
    for fields in (None, METRICS_FIELDS, TRAIN_LOG_FIELDS):
        try:
            records = read_records(path, fields)
        except RunFileError as e:
            assert "metrics.jsonl" in str(e) and all(len(line) <= 300 for line in str(e).splitlines())
        else:
            assert isinstance(records, list) and all(isinstance(r, dict) for r in records)


@FUZZ
@given(field=st.sampled_from(sorted(GOOD_METRICS)), value=json_values)
def test_a_metrics_line_with_any_value_in_one_field(tmp_path, field, value):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(_lines([GOOD_METRICS, dict(GOOD_METRICS, **{field: value})]))
    try:
        records = read_records(path, METRICS_FIELDS)
    except RunFileError as e:
        assert "line 2" in str(e)
    else:
        assert len(records) == 2


def _png(width, height):
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@FUZZ
@given(start=st.integers(0, 200), junk=st.binary(min_size=1, max_size=32), cut=st.booleans())
def test_damaged_images(tmp_path, start, junk, cut):
    data = bytearray(_png(7, 5))
    start = min(start, len(data) - 1)
    data[start:start + len(junk)] = junk
    path = tmp_path / "photo.png"
    path.write_bytes(bytes(data[:start + 1]) if cut else bytes(data))
    try:
        x = preprocess(str(path))
    except ImageError as e:
        assert "photo.png" in str(e)
    else:
        assert x.shape == (1, 3, 299, 299)


@pytest.mark.parametrize("size", [(1, 1), (50, 1), (51, 1), (1, 51)])
def test_image_shapes_at_the_aspect_limit(tmp_path, size):
    path = tmp_path / "thin.png"
    path.write_bytes(_png(*size))
    if max(size) / min(size) > 50:
        with pytest.raises(ImageError, match="thin.png"):
            preprocess(str(path))
    else:
        assert preprocess(str(path)).shape == (1, 3, 299, 299)
