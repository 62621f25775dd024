"""Property-based fuzzing (Hypothesis) of the readers of untrusted files: safetensors, torch.save (.pth), the
CIFAR-10 batches and archive, and IDX files (Fashion-MNIST's format, gzipped or not).

Every test feeds a reader either a valid file with random damage (bytes flipped, cut, inserted or removed) or a
random structure (headers, tensor views, pickles built from the very names the reader allows, and others). The
property is the same each time:

- the reader returns, or raises the library's own error (``SafetensorsError``/``WeightsError``/``CorruptDataset``);
  any other exception fails the test;
- it finishes within a few seconds (an alarm interrupts it otherwise) and allocates at most a few MB (tracemalloc
  sees NumPy's buffers too);
- what it returns comes from the file's data: arrays are compared with an independent reading of the bytes, so
  a view reaching outside its storage would show.

Crashes of the interpreter itself (SIGSEGV) would end the test run, which fails it too. The examples are
derandomized (the same ones on every run) and few enough that the whole file takes 10-20 s.
"""
import contextlib
import gzip
import io
import itertools
import json
import math
import pickle
import signal
import struct
import tarfile
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minception.data import cifar10
from minception.data.cifar10 import CorruptDataset, DatasetError
from minception.data.idx import read_idx
from minception.pretrained import WeightsError, read_weights
from minception.pretrained.safetensors import DTYPES, SafetensorsError, load_file
from pickle_writer import Build, Call, Global, PersistentId, dumps, state_dict, storage, tensor, torch_zip

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TIME_LIMIT_S = 10
MEMORY_LIMIT = 16 << 20


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@contextlib.contextmanager
def _alarm(seconds):
    if not hasattr(signal, "setitimer"):                       # no SIGALRM (Windows): no time limit
        yield
        return

    def too_slow(signum, frame):
        raise AssertionError(f"the reader ran for more than {seconds} s")
    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def load_or_refuse(load, own_error):
    """``load()`` under the time and memory limits: its result, or None if it raised ``own_error``."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        with _alarm(TIME_LIMIT_S):
            try:
                result = load()
            except own_error:
                result = None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not tracing:
            tracemalloc.stop()
    assert peak < MEMORY_LIMIT, f"the reader allocated {peak} bytes"
    return result


# ------------------------------------------------------------------------------------------ damage ---
def damaged(data):
    """A strategy: ``data`` (bytes) with 1-4 random edits: flip a byte, cut the end, insert or remove bytes."""
    edit = st.one_of(
        st.tuples(st.just("set"), st.integers(0, 1 << 30), st.integers(0, 255)),
        st.tuples(st.just("cut"), st.integers(0, 1 << 30), st.just(0)),
        st.tuples(st.just("insert"), st.integers(0, 1 << 30), st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("remove"), st.integers(0, 1 << 30), st.integers(1, 16)),
    )

    def apply(edits):
        out = bytearray(data)
        for kind, where, what in edits:
            i = where % (len(out) + 1)
            if kind == "set" and i < len(out):
                out[i] = what
            elif kind == "cut":
                del out[i:]
            elif kind == "insert":
                out[i:i] = what
            elif kind == "remove":
                del out[i:i + what]
        return bytes(out)
    return st.lists(edit, min_size=1, max_size=4).map(apply)


def _as_json_value():
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=False),
                        st.text(max_size=8))
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                        max_leaves=12)


# ------------------------------------------------------------------------------------- safetensors ---
_ST_DTYPES = sorted(DTYPES) + ["BF16"]


def _st_itemsize(name):
    return 2 if name == "BF16" else DTYPES[name].itemsize


def safetensors_bytes(header, data):
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


@st.composite
def valid_safetensors(draw):
    """A small valid file: 1-3 tensors, random dtypes and shapes, random data, no gaps."""
    header, offset, data = {}, 0, b""
    for i in range(draw(st.integers(1, 3))):
        dtype = draw(st.sampled_from(_ST_DTYPES))
        shape = draw(st.lists(st.integers(0, 3), max_size=3))
        size = math.prod(shape) * _st_itemsize(dtype)
        header[f"t{i}"] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        data += draw(st.binary(min_size=size, max_size=size))
        offset += size
    if draw(st.booleans()):
        header["__metadata__"] = {"format": "pt"}
    return safetensors_bytes(header, data)


def random_entry():
    """A header entry whose fields are each right, wrong or absent."""
    field = st.one_of(_as_json_value(), st.just(None))
    dtype = st.one_of(st.sampled_from(_ST_DTYPES + ["F8_E4M3", "f32", ""]), field)
    shape = st.one_of(st.lists(st.one_of(st.integers(-2, 4), st.sampled_from([2 ** 32, 2 ** 62, 2 ** 70]),
                                         st.booleans()), max_size=4), field)
    offsets = st.one_of(st.lists(st.integers(-4, 80), min_size=2, max_size=2),
                        st.lists(st.one_of(st.integers(-2 ** 70, 2 ** 70), st.floats(), st.text(max_size=3)),
                                 max_size=3), field)
    return st.fixed_dictionaries({}, optional={"dtype": dtype, "shape": shape, "data_offsets": offsets})


def check_safetensors_result(raw, out):
    """Each array equals its bytes in the file's data section, read independently of the reader."""
    (n,) = struct.unpack("<Q", raw[:8])
    header, data = json.loads(raw[8:8 + n]), raw[8 + n:]
    header.pop("__metadata__", None)
    assert list(out) == list(header)
    for name, info in header.items():
        begin, end = info["data_offsets"]
        chunk = data[begin:end]
        assert len(chunk) == end - begin
        if info["dtype"] == "BF16":
            expected = (np.frombuffer(chunk, "<u2").astype("<u4") << 16).view("<f4")
        else:
            expected = np.frombuffer(chunk, DTYPES[info["dtype"]])
        assert out[name].shape == tuple(info["shape"])
        assert out[name].tobytes() == expected.astype(out[name].dtype).tobytes()


@FUZZ
@given(st.data())
def test_safetensors_damaged_files(folder, data):
    raw = data.draw(damaged(data.draw(valid_safetensors())))
    path = folder / "f.safetensors"
    path.write_bytes(raw)
    out = load_or_refuse(lambda: load_file(path), SafetensorsError)
    if out is not None:
        check_safetensors_result(raw, out)


@FUZZ
@given(entries=st.dictionaries(st.text(max_size=4), random_entry(), max_size=3),
       metadata=st.one_of(st.none(), _as_json_value()), data=st.binary(max_size=80))
def test_safetensors_random_headers(folder, entries, metadata, data):
    header = dict(entries)
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = safetensors_bytes(header, data)
    path = folder / "h.safetensors"
    path.write_bytes(raw)
    out = load_or_refuse(lambda: read_weights(path), WeightsError)
    if out is not None:
        check_safetensors_result(raw, out)


# ---------------------------------------------------------------------------------------------- .pth ---
_KINDS = {"FloatStorage": "<f4", "LongStorage": "<i8", "BFloat16Storage": "<u2", "ByteStorage": "u1"}
_ALLOWED_NAMES = [("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
                  ("torch._utils", "_rebuild_parameter"), ("torch", "FloatStorage"), ("torch", "LongStorage")]
_OTHER_NAMES = [("builtins", "getattr"), ("os", "system"), ("numpy", "ndarray"), ("torch", "Tensor"),
                ("collections", "defaultdict"), ("numpy.core.multiarray", "_reconstruct")]


def storage_values(kind, numel):
    """Storage elements that are all different, so an element read from elsewhere would not match by chance."""
    return (np.arange(numel) + 1).astype(_KINDS[kind])


def reference_tensor(values, kind, offset, size, stride):
    """The tensor the view describes, element by element in plain Python (IndexError if it leaves the storage)."""
    out = np.empty(size, np.float32 if kind == "BFloat16Storage" else values.dtype)
    if out.size == 0:
        return out
    for index in itertools.product(*(range(d) for d in size)):
        where = offset + sum(i * s for i, s in zip(index, stride))
        assert 0 <= where < len(values), "the reader accepted a view reaching outside its storage"
        value = values[where]
        out[index] = (np.uint32(value) << 16).view(np.float32) if kind == "BFloat16Storage" else value
    return out


dims = st.one_of(st.integers(-2, 5), st.sampled_from([2 ** 31, 2 ** 62, -(1 << 40)]))


@FUZZ
@given(kind=st.sampled_from(sorted(_KINDS)), numel=st.integers(0, 24), extra_bytes=st.sampled_from([0, 0, 0, -1, 1]),
       offset=st.one_of(st.integers(-3, 26), st.sampled_from([2 ** 63, -(2 ** 63)])),
       shape=st.lists(st.tuples(dims, dims), max_size=3), declared=st.one_of(st.none(), st.integers(-1, 30)))
def test_pth_random_views(folder, kind, numel, extra_bytes, offset, shape, declared):
    values = storage_values(kind, numel)
    raw_storage = values.tobytes()
    raw_storage = raw_storage[:len(raw_storage) + extra_bytes] if extra_bytes < 0 else raw_storage + bytes(extra_bytes)
    size, stride = tuple(d for d, _ in shape), tuple(s for _, s in shape)
    entry = tensor(storage(kind, "0", numel if declared is None else declared), offset, size, stride)
    path = folder / "v.pth"
    path.write_bytes(torch_zip(dumps(state_dict({"w": entry})), {"0": raw_storage}))
    out = load_or_refuse(lambda: read_weights(path), WeightsError)
    if out is not None:
        np.testing.assert_array_equal(out["w"], reference_tensor(values, kind, offset, size, stride))


def _pickle_trees():
    names = st.sampled_from(_ALLOWED_NAMES + _OTHER_NAMES).map(lambda mn: Global(*mn))
    leaves = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(), st.text(max_size=6),
                       st.binary(max_size=8), names,
                       st.builds(lambda n: storage("FloatStorage", "0", n), st.integers(-1, 8)))
    keys = st.one_of(st.text(max_size=4), st.integers(-5, 5))

    def extend(inner):
        return st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                         st.dictionaries(keys, inner, max_size=3),
                         st.builds(Call, inner, st.lists(inner, max_size=6).map(tuple)),
                         st.builds(Build, inner, inner), st.builds(PersistentId, inner),
                         st.builds(tensor, inner, inner, st.lists(inner, max_size=3), st.lists(inner, max_size=3)))
    return st.recursive(leaves, extend, max_leaves=16)


@FUZZ
@given(tree=_pickle_trees())
def test_pth_random_pickles(folder, tree):
    values = storage_values("FloatStorage", 8)
    path = folder / "p.pth"
    path.write_bytes(torch_zip(dumps(tree), {"0": values.tobytes()}))
    out = load_or_refuse(lambda: read_weights(path), WeightsError)
    for array in (out or {}).values():              # whatever came back holds storage elements only
        assert array.size == 0 or np.isin(array, values).all()


@st.composite
def valid_pth(draw):
    values = storage_values("FloatStorage", 12)
    entries = {}
    for i in range(draw(st.integers(1, 3))):
        rows, cols = draw(st.integers(0, 3)), draw(st.integers(0, 3))
        entries[f"w{i}"] = tensor(storage("FloatStorage", "0", 12), draw(st.integers(0, 12 - rows * cols)),
                                  (rows, cols), (cols, 1))
    return torch_zip(dumps(state_dict(entries)), {"0": values.tobytes()})


@FUZZ
@given(st.data())
def test_pth_damaged_files(folder, data):
    raw = data.draw(damaged(data.draw(valid_pth())))
    path = folder / "d.pth"
    path.write_bytes(raw)
    out = load_or_refuse(lambda: read_weights(path), WeightsError)
    if out is not None:                             # the storage member may itself be damaged: read it from the zip
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            stored = np.frombuffer(z.read("archive/data/0"), "<f4")
        for array in out.values():
            assert array.size == 0 or np.isin(array.view("<u4"), stored.view("<u4")).all()


_METHODS = {zipfile.ZIP_STORED: None, zipfile.ZIP_DEFLATED: None, zipfile.ZIP_BZIP2: "bzip2",
            zipfile.ZIP_LZMA: "LZMA"}


@FUZZ
@given(st.data())
def test_pth_compression_methods(folder, data):
    """Stored and deflate members load as the same state dict; a member the reader needs in bzip2 or LZMA is
    refused by name before it is decompressed; either, damaged, gives a state dict or a WeightsError."""
    raw = data.draw(valid_pth())
    expected = read_weights(_write(folder / "s.pth", raw))
    buf, methods = io.BytesIO(), {}
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            methods[info.filename] = data.draw(st.sampled_from(sorted(_METHODS)))
            dst.writestr(info.filename, src.read(info), compress_type=methods[info.filename])
    refused = sorted(_METHODS[m] for name, m in methods.items() if _METHODS[m] and not name.endswith("/version"))
    path = _write(folder / "m.pth", buf.getvalue())
    if refused:
        with pytest.raises(WeightsError, match="bzip2|LZMA"):
            read_weights(path)
    else:
        out = read_weights(path)
        assert list(out) == list(expected) and all(np.array_equal(out[k], expected[k]) for k in out)
    load_or_refuse(lambda: read_weights(_write(path, data.draw(damaged(buf.getvalue())))), WeightsError)


def _write(path, raw):
    path.write_bytes(raw)
    return path


# --------------------------------------------------------------------------------------------- CIFAR ---
def _batch(rows, protocol):
    rng = np.random.default_rng(rows)
    d = {b"batch_label": b"fuzz", b"labels": [int(v) for v in rng.integers(0, 10, rows)],
         b"data": rng.integers(0, 256, (rows, 3072), dtype=np.uint8), b"filenames": [b"a.png"] * rows}
    return pickle.dumps(d, protocol=protocol)


def check_batch(raw, out, verbatim):
    images, labels = out
    assert images.dtype == np.uint8 and images.shape[1:] == (3, 32, 32)
    assert labels.dtype == np.int64 and labels.shape == (images.shape[0],)
    assert labels.size == 0 or (labels.min() >= 0 and labels.max() <= 9)
    if verbatim:                                    # protocols >= 3 store the pixel bytes as they are
        assert images.tobytes() in raw


@FUZZ
@given(data=st.data(), rows=st.integers(0, 2), protocol=st.sampled_from([2, 4]))
def test_cifar_damaged_batches(data, rows, protocol):
    raw = data.draw(damaged(_batch(rows, protocol)))
    out = load_or_refuse(lambda: cifar10._parse_batch(raw, "batch"), CorruptDataset)
    if out is not None:
        check_batch(raw, out, protocol >= 3)


def _cifar_trees():
    names = st.sampled_from([("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                             ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
                             ("numpy._core.numeric", "_frombuffer"), ("builtins", "list"), ("os", "getcwd")])
    leaves = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 40, 2 ** 40), st.text(max_size=4),
                       st.sampled_from(["u1", "O", "<i8", "|", "b", "latin1", b"b", (0,), (3, "|", None, None, None,
                                                                                            -1, -1, 0)]),
                       st.binary(max_size=12), names.map(lambda mn: Global(*mn)))
    keys = st.one_of(st.sampled_from([b"data", b"labels", "data", "labels"]), st.text(max_size=3))

    def extend(inner):
        return st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner), st.tuples(inner, inner, inner),
                         st.dictionaries(keys, inner, max_size=3),
                         st.builds(Call, inner, st.lists(inner, max_size=5).map(tuple)), st.builds(Build, inner, inner))
    return st.recursive(leaves, extend, max_leaves=20)


@FUZZ
@given(tree=_cifar_trees())
def test_cifar_random_pickles(tree):
    raw = dumps(tree)
    out = load_or_refuse(lambda: cifar10._parse_batch(raw, "batch"), CorruptDataset)
    if out is not None:
        check_batch(raw, out, verbatim=True)
    load_or_refuse(lambda: cifar10._parse_meta(raw, "meta"), CorruptDataset)


def _archive():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        files = {name: _batch(1, 2) for name in cifar10.TRAIN_FILES + (cifar10.TEST_FILE,)}
        files[cifar10.META_FILE] = pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]}, protocol=2)
        for name, raw in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


ARCHIVE = _archive()


@settings(FUZZ, max_examples=40)
@given(raw=damaged(ARCHIVE))
def test_cifar_damaged_archives(folder, raw):
    path = folder / "cifar-10-python.tar.gz"
    path.write_bytes(raw)
    out = load_or_refuse(lambda: cifar10.read_cifar10(str(path)), DatasetError)
    if out is not None:
        train, test = out
        assert train.images.shape == (5, 3, 32, 32) and test.images.shape == (1, 3, 32, 32)


# ----------------------------------------------------------------------------------------------- IDX ---
@st.composite
def idx_files(draw):
    """``(file bytes, shape, values)``: an IDX header of random dimensions (up to 255, sizes up to 2**32 - 1)
    followed by random values or by many zeros, gzipped or not. Most headers lie about what follows."""
    ndim = draw(st.one_of(st.integers(1, 4), st.integers(1, 255)))
    sizes = draw(st.lists(st.one_of(st.integers(0, 8), st.integers(0, 2 ** 32 - 1)), min_size=ndim, max_size=ndim))
    code = draw(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]))
    values = draw(st.one_of(st.binary(max_size=64), st.integers(0, 4 << 20).map(bytes)))    # up to 4 MB of zeros
    content = bytes([0, 0, code, ndim]) + struct.pack(f">{ndim}I", *sizes) + values
    return (gzip.compress(content, compresslevel=1) if draw(st.booleans()) else content), tuple(sizes), values


@settings(FUZZ, max_examples=100)
@given(case=idx_files())
def test_idx_random_headers(folder, case):
    """Whatever the header claims, read_idx returns exactly the values that follow it or raises CorruptDataset,
    within the memory limit: 4 MB of zeros packs into a few KB of gzip, and a header may claim 2**32 ** 255."""
    raw, shape, values = case
    path = folder / "fuzz-idx"
    path.write_bytes(raw)
    out = load_or_refuse(lambda: read_idx(path), CorruptDataset)
    if out is not None:
        assert out.shape == shape and out.nbytes == len(values)
