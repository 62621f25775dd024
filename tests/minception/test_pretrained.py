"""minception.pretrained: the safetensors format, loading timm-format weights, the published key layout,
preprocessing, class names, downloading, and the classify_image example. No torch or timm needed: the "timm files"
are written here with timm's exact key names and shapes (checked against a hard-coded sample from timm's source and
against the shipped manifests, generated from timm 1.0.31)."""
import io
import json
import os
import runpy
import struct
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from minception import models
from minception.nn.state import StateDictError
from minception.pretrained import (PRETRAINED, WeightsError, check_keys, download_weights, get_info, imagenet_classes,
                                   inception_preprocess, load_timm_weights, preprocess, read_weights,
                                   verify_checkpoint, where_to_get)
from minception.pretrained import download as download_mod
from minception.pretrained.preprocessing import center_crop, resize_shorter_side
from minception.pretrained.safetensors import SafetensorsError, load_file, read_header, save_file

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDERS = {"inception_v4": models.inception_v4, "inception_resnet_v2": models.inception_resnet_v2}

# Keys read in timm's source (timm/models/inception_v4.py, inception_resnet_v2.py) and a timm 1.0.31 state_dict.
TIMM_SAMPLE = {
    "inception_v4": {
        "features.0.conv.weight": (32, 3, 3, 3),
        "features.0.bn.running_mean": (32,),
        "features.3.conv.conv.weight": (96, 64, 3, 3),          # Mixed3a: maxpool, then conv
        "features.4.branch1.1.conv.weight": (64, 64, 1, 7),      # Mixed4a: 1x7 before 7x1 (TF-slim order)
        "features.5.conv.conv.weight": (192, 192, 3, 3),         # Mixed5a
        "features.6.branch3.1.conv.weight": (96, 384, 1, 1),     # Inception-A pool branch
        "features.14.branch2.1.conv.weight": (192, 192, 7, 1),   # Inception-B: 7x1 first in the long branch
        "features.21.branch1_1a.conv.weight": (256, 384, 1, 3),  # Inception-C: timm's own branch names
        "features.21.branch2_1.conv.weight": (448, 384, 3, 1),   # 3x1 448, then 1x3 512
        "features.21.branch2_2.conv.weight": (512, 448, 1, 3),
        "last_linear.weight": (1000, 1536),
        "last_linear.bias": (1000,),
    },
    "inception_resnet_v2": {
        "conv2d_1a.conv.weight": (32, 3, 3, 3),
        "conv2d_4a.bn.running_var": (192,),
        "mixed_5b.branch0.conv.weight": (96, 192, 1, 1),
        "mixed_5b.branch1.1.conv.weight": (64, 48, 5, 5),
        "repeat.0.branch1.1.conv.weight": (32, 32, 3, 3),
        "repeat.9.conv2d.bias": (320,),
        "mixed_6a.branch0.conv.weight": (384, 320, 3, 3),
        "repeat_1.19.branch1.2.conv.weight": (192, 160, 7, 1),
        "mixed_7a.branch2.2.conv.weight": (320, 288, 3, 3),
        "repeat_2.8.conv2d.weight": (2080, 448, 1, 1),
        "block8.conv2d.bias": (2080,),
        "conv2d_7b.bn.running_var": (1536,),
        "classif.weight": (1000, 1536),
    },
}
# tensors in timm's state dict without num_batches_tracked, and the trainable parameters (architectures.md §5.2)
TIMM_COUNTS = {"inception_v4": (747, 42_679_816), "inception_resnet_v2": (1102, 55_843_464)}


def _timm_style_state(model, rng, with_counters=True):
    """What timm's state_dict of the same network holds: float32 tensors, int64 0-d num_batches_tracked."""
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("rng_state"):          # minception's dropout stream (nn.Dropout): not in timm's files
            continue
        if key.endswith("num_batches_tracked"):
            if with_counters:
                state[key] = np.array(int(rng.integers(1, 1000)), dtype=np.int64)
        elif key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 1.5, value.shape).astype(np.float32)
        else:                       # weights scaled by 1/sqrt(fan_in) so that a forward pass stays finite
            fan_in = int(np.prod(value.shape[1:])) if value.ndim > 1 else 1
            state[key] = (rng.standard_normal(value.shape) / np.sqrt(fan_in)).astype(np.float32)
    return state


def _small(name, **kw):
    # width 0.1: the same keys as width 1 (the key set does not depend on width), 100x fewer parameters
    return BUILDERS[name](variant="released", width=0.1, **kw)


# ============================================================================== safetensors
class TestSafetensors:
    def test_round_trip_every_dtype(self, tmp_path):
        rng = np.random.default_rng(0)
        tensors = {
            "f32": rng.standard_normal((3, 5, 2)).astype(np.float32),
            "f64": rng.standard_normal(7),
            "f16": rng.standard_normal((2, 3)).astype(np.float16),
            "i64 scalar": np.array(12345678901, dtype=np.int64),
            "i32": np.arange(-3, 3, dtype=np.int32),
            "u8": np.arange(5, dtype=np.uint8),
            "bool": np.array([True, False, True]),
            "empty": np.zeros((0, 4), np.float32),
            "fortran": np.asfortranarray(rng.standard_normal((3, 4)).astype(np.float32)),
        }
        path = tmp_path / "all.safetensors"
        save_file(tensors, path, metadata={"format": "pt"})
        back = load_file(path)
        assert list(back) == list(tensors)
        for key, value in tensors.items():
            assert back[key].dtype == value.dtype and back[key].shape == value.shape, key
            np.testing.assert_array_equal(back[key], value)
            assert back[key].flags.writeable
        header, metadata, start = read_header(path)
        assert metadata == {"format": "pt"} and start % 8 == 0
        assert header["f32"] == {"dtype": "F32", "shape": [3, 5, 2], "data_offsets": [0, 120]}

    def test_reads_a_file_built_by_hand(self, tmp_path):
        # Independent of save_file: the format as its specification describes it, byte by byte.
        w = np.array([[1.5, -2.0], [0.25, 8.0]], dtype="<f4")
        n = np.array([7], dtype="<i8")
        bf16 = np.array([1.0, -3.5], dtype=np.float32).view(np.uint32) >> 16      # the top halves
        header = {"n": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]},
                  "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [8, 24]},
                  "b": {"dtype": "BF16", "shape": [2], "data_offsets": [24, 28]},
                  "__metadata__": {"source": "hand"}}
        text = json.dumps(header).encode() + b"   "                                # trailing spaces are allowed
        blob = struct.pack("<Q", len(text)) + text + n.tobytes() + w.tobytes() + bf16.astype("<u2").tobytes()
        path = tmp_path / "hand.safetensors"
        path.write_bytes(blob)
        back = load_file(path)
        np.testing.assert_array_equal(back["w"], w)
        assert back["n"].tolist() == [7]
        assert back["b"].dtype == np.float32 and back["b"].tolist() == [1.0, -3.5]
        assert load_file(path, names=["w"]).keys() == {"w"}

    @pytest.mark.parametrize("damage, message", [
        (lambda b: b[:5], "too short"),
        (lambda b: struct.pack("<Q", 10 ** 6) + b[8:], "does not fit"),
        (lambda b: b[:-4], "run past"),
        (lambda b: b[:8] + b"[" + b[9:], "JSON"),
    ])
    def test_damaged_files_are_refused(self, tmp_path, damage, message):
        path = tmp_path / "x.safetensors"
        save_file({"a": np.ones(4, np.float32)}, path)
        path.write_bytes(damage(path.read_bytes()))
        with pytest.raises(SafetensorsError, match=message):
            load_file(path)

    def test_inconsistent_header_is_refused(self, tmp_path):
        def write(header, data):
            text = json.dumps(header).encode()
            (tmp_path / "h.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + data)
            return tmp_path / "h.safetensors"

        bad_size = {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}
        with pytest.raises(SafetensorsError, match="needs 12 bytes"):
            load_file(write(bad_size, bytes(8)))
        overlap = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                   "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}
        with pytest.raises(SafetensorsError, match="overlap"):
            load_file(write(overlap, bytes(12)))
        with pytest.raises(SafetensorsError, match="not supported"):
            load_file(write({"a": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}, bytes(1)))

    def test_writer_rejects_what_it_cannot_store(self, tmp_path):
        with pytest.raises(TypeError, match="complex"):
            save_file({"c": np.zeros(2, np.complex64)}, tmp_path / "c.safetensors")
        with pytest.raises(TypeError, match="metadata"):
            save_file({"a": np.zeros(1)}, tmp_path / "m.safetensors", metadata={"k": 1})


# ============================================================================== the published layout
class TestTimmLayout:
    @pytest.mark.parametrize("name", sorted(PRETRAINED))
    def test_manifest_matches_known_timm_keys_and_counts(self, name):
        shapes = get_info(name).expected_shapes()
        for key, shape in TIMM_SAMPLE[name].items():
            assert shapes[key] == shape, key
        n_tensors, n_params = TIMM_COUNTS[name]
        assert len(shapes) == n_tensors
        trainable = sum(int(np.prod(s)) for k, s in shapes.items()
                        if not k.endswith(("running_mean", "running_var")))
        assert trainable == n_params

    @pytest.mark.parametrize("name", sorted(PRETRAINED))
    def test_released_model_has_exactly_timms_keys(self, name):
        expected = get_info(name).expected_shapes()
        own = [k for k in _small(name).state_dict() if not k.endswith(("num_batches_tracked", "rng_state"))]
        assert own == list(expected)                                   # same keys, same order

    @pytest.mark.parametrize("name", sorted(PRETRAINED))
    def test_released_model_has_exactly_timms_shapes_at_full_width(self, name):
        model = BUILDERS[name](variant="released")                     # built, never run: ~1 s
        missing, unexpected, mismatched = check_keys(get_info(name).expected_shapes(), model.state_dict())
        assert (missing, unexpected, mismatched) == ([], [], [])


# ============================================================================== loading
class TestLoadTimmWeights:
    @pytest.mark.parametrize("name", sorted(PRETRAINED))
    @pytest.mark.parametrize("fmt", ["safetensors", "npz"])
    def test_round_trip(self, tmp_path, name, fmt):
        rng = np.random.default_rng(1)
        state = _timm_style_state(_small(name), rng)
        path = tmp_path / f"w.{fmt}"
        if fmt == "safetensors":
            save_file(state, path, metadata={"format": "pt"})
        else:
            np.savez(path, **state)
        model = _small(name)
        assert load_timm_weights(model, path) is model
        got = model.state_dict()
        assert set(got) - set(state) == {k for k in got if k.endswith("rng_state")}   # the dropout stream stays
        for key, value in state.items():
            np.testing.assert_array_equal(got[key], value, err_msg=key)
            assert got[key].dtype == value.dtype
        assert isinstance(model.parameters()[0].data, np.ndarray)

    def test_file_without_counters_keeps_the_models(self, tmp_path):
        model = _small("inception_v4")
        before = {k: v for k, v in model.state_dict().items() if k.endswith("num_batches_tracked")}
        state = _timm_style_state(model, np.random.default_rng(2), with_counters=False)
        load_timm_weights(model, state)
        after = model.state_dict()
        assert all(np.array_equal(after[k], v) for k, v in before.items())
        np.testing.assert_array_equal(after["last_linear.weight"], state["last_linear.weight"])

    def test_counters_the_model_lacks_are_ignored(self):
        from minception import nn
        model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.Flatten())
        w = np.random.default_rng(3).standard_normal((4, 3, 3, 3)).astype(np.float32)
        load_timm_weights(model, {"0.weight": w, "0.num_batches_tracked": np.array(5)})
        np.testing.assert_array_equal(model.state_dict()["0.weight"], w)

    def _expect_error(self, model, state, *fragments):
        before = model.state_dict()
        with pytest.raises(StateDictError) as info:
            load_timm_weights(model, state)
        message = str(info.value)
        for fragment in fragments:
            assert fragment in message, (fragment, message)
        after = model.state_dict()                                      # nothing was copied
        assert all(np.array_equal(before[k], after[k]) for k in before)
        return info.value

    def test_missing_unexpected_and_misshaped_keys_are_all_listed(self, tmp_path):
        model = _small("inception_resnet_v2")
        state = _timm_style_state(model, np.random.default_rng(4))
        del state["conv2d_7b.bn.running_var"]
        state["aux_logits.weight"] = np.zeros(3, np.float32)
        state["block8.conv2d.bias"] = np.zeros(7, np.float32)
        path = tmp_path / "bad.safetensors"
        save_file(state, path)
        err = self._expect_error(model, path, str(path), "1 missing, 1 unexpected, 1 mis-shaped",
                                 "conv2d_7b.bn.running_var", "aux_logits.weight", "block8.conv2d.bias file (7,)")
        assert err.missing == ["conv2d_7b.bn.running_var"] and err.unexpected == ["aux_logits.weight"]
        assert isinstance(err, KeyError) and isinstance(err, ValueError)

    def test_classifier_mismatch_names_num_classes(self):
        model = _small("inception_v4", num_classes=10)
        state = _timm_style_state(_small("inception_v4"), np.random.default_rng(5))
        features = model.state_dict()["last_linear.weight"].shape[1]
        self._expect_error(model, state, f"last_linear.weight file (1000, {features}) vs model (10, {features})",
                           "num_classes=1000")

    def test_paper_variant_gets_a_hint(self):
        state = _timm_style_state(_small("inception_v4"), np.random.default_rng(6))
        self._expect_error(models.inception_v4(width=0.1), state, "missing", "unexpected", 'variant="released"')

    def test_non_strict_loads_the_common_keys(self):
        model = _small("inception_v4")
        state = _timm_style_state(model, np.random.default_rng(7))
        state.pop("features.0.conv.weight")
        state["extra"] = np.zeros(1, np.float32)
        load_timm_weights(model, state, strict=False)
        np.testing.assert_array_equal(model.state_dict()["last_linear.bias"], state["last_linear.bias"])

    def test_unreadable_files(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="nope.safetensors"):
            read_weights(tmp_path / "nope.safetensors")
        (tmp_path / "w.pkl").write_bytes(b"x")
        with pytest.raises(WeightsError, match="unknown weights format"):
            read_weights(tmp_path / "w.pkl")
        (tmp_path / "w.safetensors").write_bytes(b"garbage!garbage")
        with pytest.raises(WeightsError):
            read_weights(tmp_path / "w.safetensors")
        (tmp_path / "w.npz").write_bytes(b"PK\x03\x04garbage")
        with pytest.raises(WeightsError, match=r"w.npz: cannot read it as an .npz archive \(truncated or corrupt"):
            read_weights(tmp_path / "w.npz")
        np.savez(tmp_path / "o.npz", a=np.array([{}], dtype=object))
        with pytest.raises(WeightsError, match="o.npz: member 'a.npy' has dtype object"):
            read_weights(tmp_path / "o.npz")

    def test_npz_claiming_more_than_it_holds_is_refused_before_allocating(self, tmp_path):
        """A compressed .npz whose array header claims 2**40 floats: numpy.load would try to allocate 4 TiB
        (MemoryError, not ours); the checked reader compares the claim with the member's size first."""
        import zipfile
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (2 ** 40,)})
        with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("w.npy", header.getvalue() + bytes(64))
        with pytest.raises(WeightsError, match="bomb.npz"):
            read_weights(tmp_path / "bomb.npz")

    def test_lives_in_pretrained_only(self):
        # models builds networks and knows nothing of weight files: the loader is minception.pretrained's
        import minception.pretrained
        assert minception.pretrained.load_timm_weights is load_timm_weights
        assert not hasattr(models, "load_timm_weights")


# ============================================================================== torch.save files, without torch
# Written by torch 2.13.0: torch.save(OrderedDict([("conv.weight", torch.arange(24.).reshape(2, 3, 2, 2)),
#   ("bn.num_batches_tracked", torch.tensor(7)), ("fc.weight_t", torch.arange(6.).reshape(2, 3).t()),
#   ("half", torch.tensor([0.5, -2.0], dtype=torch.bfloat16))]), "fixture.pth"); base64 of the file.
TORCH_SAVE_FIXTURE = (  # noqa: E501
    "UEsDBAAACAgAAAAAAAAAAAAAAAAAAAAAAAAQABIAZml4dHVyZS9kYXRhLnBrbEZCDgBaWlpaWlpaWlpaWlpaWoACY2NvbGxlY3Rpb25z"
    "Ck9yZGVyZWREaWN0CnEAKVJxAShYCwAAAGNvbnYud2VpZ2h0cQJjdG9yY2guX3V0aWxzCl9yZWJ1aWxkX3RlbnNvcl92MgpxAygoWAcA"
    "AABzdG9yYWdlcQRjdG9yY2gKRmxvYXRTdG9yYWdlCnEFWAEAAAAwcQZYAwAAAGNwdXEHSxh0cQhRSwAoSwJLA0sCSwJ0cQkoSwxLBEsC"
    "SwF0cQqJaAApUnELdHEMUnENWBYAAABibi5udW1fYmF0Y2hlc190cmFja2VkcQ5oAygoaARjdG9yY2gKTG9uZ1N0b3JhZ2UKcQ9YAQAA"
    "ADFxEGgHSwF0cRFRSwApKYloAClScRJ0cRNScRRYCwAAAGZjLndlaWdodF90cRVoAygoaARoBVgBAAAAMnEWaAdLBnRxF1FLAEsDSwKG"
    "cRhLAUsDhnEZiWgAKVJxGnRxG1JxHFgEAAAAaGFsZnEdaAMoKGgEY3RvcmNoCkJGbG9hdDE2U3RvcmFnZQpxHlgBAAAAM3EfaAdLAnRx"
    "IFFLAEsChXEhSwGFcSKJaAApUnEjdHEkUnEldS5QSwcIfGT8PLEBAACxAQAAUEsDBAAACAgAAAAAAAAAAAAAAAAAAAAAAAAXAAoAZml4"
    "dHVyZS8uZm9ybWF0X3ZlcnNpb25GQgYAWlpaWlpaMVBLBwi379yDAQAAAAEAAABQSwMEAAAICAAAAAAAAAAAAAAAAAAAAAAAABoANwBm"
    "aXh0dXJlLy5zdG9yYWdlX2FsaWdubWVudEZCMwBaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpa"
    "Wlo2NFBLBwg/d3HpAgAAAAIAAABQSwMEAAAICAAAAAAAAAAAAAAAAAAAAAAAABEAPwBmaXh0dXJlL2J5dGVvcmRlckZCOwBaWlpaWlpa"
    "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWmxpdHRsZVBLBwiFPeMZBgAAAAYAAABQSwME"
    "AAAICAAAAAAAAAAAAAAAAAAAAAAAAA4APgBmaXh0dXJlL2RhdGEvMEZCOgBaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpa"
    "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaAAAAAAAAgD8AAABAAABAQAAAgEAAAKBAAADAQAAA4EAAAABBAAAQQQAAIEEAADBBAABAQQAA"
    "UEEAAGBBAABwQQAAgEEAAIhBAACQQQAAmEEAAKBBAACoQQAAsEEAALhBUEsHCIJB3G5gAAAAYAAAAFBLAwQAAAgIAAAAAAAAAAAAAAAA"
    "AAAAAAAADgAkAGZpeHR1cmUvZGF0YS8xRkIgAFpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaBwAAAAAAAABQSwcIcNbnbwgA"
    "AAAIAAAAUEsDBAAACAgAAAAAAAAAAAAAAAAAAAAAAAAOADwAZml4dHVyZS9kYXRhLzJGQjgAWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpa"
    "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWloAAAAAAACAPwAAAEAAAEBAAACAQAAAoEBQSwcIF5DnkRgAAAAYAAAAUEsDBAAA"
    "CAgAAAAAAAAAAAAAAAAAAAAAAAAOACwAZml4dHVyZS9kYXRhLzNGQigAWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpa"
    "WlpaWgA/AMBQSwcIAb8XlQQAAAAEAAAAUEsDBAAACAgAAAAAAAAAAAAAAAAAAAAAAAAPAD8AZml4dHVyZS92ZXJzaW9uRkI7AFpaWlpa"
    "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaMwpQSwcI0Z5nVQIAAAACAAAAUEsDBAAA"
    "CAgAAAAAAAAAAAAAAAAAAAAAAAAeADIAZml4dHVyZS8uZGF0YS9zZXJpYWxpemF0aW9uX2lkRkIuAFpaWlpaWlpaWlpaWlpaWlpaWlpa"
    "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWloxMDc3ODYyNzI5Nzk5ODU0MTYyNTA1NzQ3NTY2Mzg5MDA3MTAzNzA0UEsHCLcqunUoAAAA"
    "KAAAAFBLAQIAAAAACAgAAAAAAAB8ZPw8sQEAALEBAAAQAAAAAAAAAAAAAAAAAAAAAABmaXh0dXJlL2RhdGEucGtsUEsBAgAAAAAICAAA"
    "AAAAALfv3IMBAAAAAQAAABcAAAAAAAAAAAAAAAAAAQIAAGZpeHR1cmUvLmZvcm1hdF92ZXJzaW9uUEsBAgAAAAAICAAAAAAAAD93cekC"
    "AAAAAgAAABoAAAAAAAAAAAAAAAAAUQIAAGZpeHR1cmUvLnN0b3JhZ2VfYWxpZ25tZW50UEsBAgAAAAAICAAAAAAAAIU94xkGAAAABgAA"
    "ABEAAAAAAAAAAAAAAAAA0gIAAGZpeHR1cmUvYnl0ZW9yZGVyUEsBAgAAAAAICAAAAAAAAIJB3G5gAAAAYAAAAA4AAAAAAAAAAAAAAAAA"
    "VgMAAGZpeHR1cmUvZGF0YS8wUEsBAgAAAAAICAAAAAAAAHDW528IAAAACAAAAA4AAAAAAAAAAAAAAAAAMAQAAGZpeHR1cmUvZGF0YS8x"
    "UEsBAgAAAAAICAAAAAAAABeQ55EYAAAAGAAAAA4AAAAAAAAAAAAAAAAAmAQAAGZpeHR1cmUvZGF0YS8yUEsBAgAAAAAICAAAAAAAAAG/"
    "F5UEAAAABAAAAA4AAAAAAAAAAAAAAAAAKAUAAGZpeHR1cmUvZGF0YS8zUEsBAgAAAAAICAAAAAAAANGeZ1UCAAAAAgAAAA8AAAAAAAAA"
    "AAAAAAAAlAUAAGZpeHR1cmUvdmVyc2lvblBLAQIAAAAACAgAAAAAAAC3Krp1KAAAACgAAAAeAAAAAAAAAAAAAAAAABIGAABmaXh0dXJl"
    "Ly5kYXRhL3NlcmlhbGl6YXRpb25faWRQSwYGLAAAAAAAAAAeAy0AAAAAAAAAAAAKAAAAAAAAAAoAAAAAAAAAgwIAAAAAAAC4BgAAAAAA"
    "AFBLBgcAAAAAOwkAAAAAAAABAAAAUEsFBgAAAAAKAAoAgwIAALgGAAAAAA=="
)


class TestTorchSaveFiles:
    def _write(self, tmp_path, name="fixture.pth"):
        import base64
        path = tmp_path / name
        path.write_bytes(base64.b64decode("".join(TORCH_SAVE_FIXTURE)))
        return path

    def test_reads_a_real_torch_save_file(self, tmp_path):
        state = read_weights(self._write(tmp_path))
        assert list(state) == ["conv.weight", "bn.num_batches_tracked", "fc.weight_t", "half"]
        np.testing.assert_array_equal(state["conv.weight"], np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2))
        assert state["bn.num_batches_tracked"].shape == () and state["bn.num_batches_tracked"] == 7
        assert state["bn.num_batches_tracked"].dtype == np.int64
        np.testing.assert_array_equal(state["fc.weight_t"], np.arange(6, dtype=np.float32).reshape(2, 3).T)
        assert state["fc.weight_t"].flags.c_contiguous                    # strided view copied out
        assert state["half"].dtype == np.float32 and state["half"].tolist() == [0.5, -2.0]

    def test_refuses_anything_but_tensors(self, tmp_path):
        import io
        import pickle
        import zipfile

        class Evil:
            def __reduce__(self):
                return (os.system, ("echo should never run",))

        path = tmp_path / "evil.pth"
        with zipfile.ZipFile(path, "w") as z:
            buf = io.BytesIO()
            pickle.dump({"w": Evil()}, buf, protocol=2)
            z.writestr("evil/data.pkl", buf.getvalue())
        with pytest.raises(WeightsError, match="refusing"):
            read_weights(path)
        (tmp_path / "legacy.pth").write_bytes(b"\x80\x02not a zip")
        with pytest.raises(WeightsError, match="not a zip-format"):
            read_weights(tmp_path / "legacy.pth")


# ============================================================================== structural verification
def _manifest_state(name, value=0.0):
    return {k: np.full(s, value, np.float32) for k, s in get_info(name).expected_shapes().items()}


class TestVerifyCheckpoint:
    def test_published_layout_passes_and_damage_is_named(self, tmp_path, monkeypatch):
        # verify_checkpoint reads the file; give it a dict-backed reader to avoid writing 170 MB.
        from minception.pretrained import timm_weights
        state = _manifest_state("inception_v4")
        monkeypatch.setattr(timm_weights, "read_weights", lambda path: state)
        assert verify_checkpoint("v4.safetensors", "inception_v4") is state
        state["features.6.branch0.conv.weight"] = np.zeros((96, 384, 3, 3), np.float32)
        with pytest.raises(WeightsError, match=r"features.6.branch0.conv.weight file \(96, 384, 3, 3\)"):
            verify_checkpoint("v4.safetensors", "inception_v4")
        with pytest.raises(WeightsError, match="missing"):
            verify_checkpoint("v4.safetensors", "inception_resnet_v2")
        state.update(_manifest_state("inception_v4"))
        state["last_linear.bias"] = np.full(1000, np.nan, np.float32)
        with pytest.raises(WeightsError, match="non-finite"):
            verify_checkpoint("v4.safetensors", "inception_v4")


# ============================================================================== preprocessing
def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


class TestPreprocessing:
    def test_tiny_image_by_hand(self):
        # 4 x 6 image, crop 2 of crop_pct 0.5: resize target floor(2 / 0.5) = 4 = the shorter side (no resampling),
        # crop rows round(1.0) = 1.., columns round(2.0) = 2..; then (x / 255 - 0.5) / 0.5.
        img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3) * 3
        x = inception_preprocess(img, input_size=2, crop_pct=0.5)
        expected = (img[1:3, 2:4].transpose(2, 0, 1)[None].astype(np.float64) / 255 - 0.5) / 0.5
        assert x.dtype == np.float32 and x.shape == (1, 3, 2, 2)
        np.testing.assert_allclose(x, expected, rtol=0, atol=1e-7)
        assert x[0, 0, 0, 0] == np.float32((np.float32(img[1, 2, 0]) / np.float32(255) - np.float32(0.5)) / 0.5)

    def test_crop_offsets_round_half_to_even(self):
        # 7 wide, 5 high, crop 2: left = round(2.5) = 2, top = round(1.5) = 2 (torchvision's CenterCrop)
        img = _image(5, 7)
        out = np.asarray(center_crop(Image.fromarray(img), 2))
        np.testing.assert_array_equal(out, img[2:4, 2:4])

    def test_resize_target_uses_floor_and_truncates_the_long_side(self):
        # Inception-v4: floor(299 / 0.875) = 341 (341.71...); IR-v2: floor(299 / 0.8975) = 333 (333.15...).
        # An image whose shorter side is already that size is only cropped: check against a manual crop.
        img = _image(400, 341)                                          # H 400, W 341
        np.testing.assert_array_equal(preprocess(img, "inception_v4")[0],
                                      (img[50:349, 21:320].transpose(2, 0, 1) / np.float32(255) - 0.5) / 0.5)
        img = _image(333, 350)                                          # H 333, W 350
        np.testing.assert_array_equal(preprocess(img, "inception_resnet_v2")[0],
                                      (img[17:316, 26:325].transpose(2, 0, 1) / np.float32(255) - 0.5) / 0.5)
        assert resize_shorter_side(Image.fromarray(_image(512, 600)), 341).size == (399, 341)   # int(399.6)
        assert resize_shorter_side(Image.fromarray(_image(600, 512)), 333).size == (333, 390)   # int(390.2)

    def test_bicubic_resize_of_a_flat_image_is_flat(self):
        img = np.full((20, 30, 3), (10, 128, 250), np.uint8)
        x = inception_preprocess(img, input_size=8, crop_pct=0.8)       # resize to 10 x 15 bicubic, crop 8
        for c, v in enumerate((10, 128, 250)):
            np.testing.assert_allclose(x[0, c], (v / 255 - 0.5) / 0.5, atol=1e-6)

    def test_any_image_source_gives_the_same_array(self, tmp_path):
        img = _image(310, 320, seed=3)
        path = tmp_path / "p.png"
        Image.fromarray(img).save(path)
        a = preprocess(img, "inception_resnet_v2")
        np.testing.assert_array_equal(a, preprocess(str(path), "inception_resnet_v2"))
        np.testing.assert_array_equal(a, preprocess(Image.fromarray(img).convert("RGBA"), "inception_resnet_v2"))
        assert a.shape == (1, 3, 299, 299) and -1 <= a.min() and a.max() <= 1

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="crop_pct"):
            inception_preprocess(_image(8, 8), input_size=4, crop_pct=1.5)
        with pytest.raises(ValueError, match="uint8"):
            preprocess(np.zeros((8, 8), np.float32))
        with pytest.raises(ValueError, match="interpolation"):
            inception_preprocess(_image(8, 8), input_size=4, interpolation="area")
        with pytest.raises(ValueError, match="no published checkpoint"):
            preprocess(_image(8, 8), "resnet50")


# ============================================================================== class names
class TestImageNetClasses:
    def test_the_standard_1000_in_order(self):
        names, wnids = imagenet_classes.class_names(), imagenet_classes.synsets()
        assert len(names) == len(wnids) == 1000
        assert wnids == sorted(wnids) and len(set(wnids)) == 1000
        assert (wnids[0], wnids[999]) == ("n01440764", "n15075141")
        assert imagenet_classes.short_name(0) == "tench"
        assert imagenet_classes.short_name(1) == "goldfish"
        assert imagenet_classes.class_name(207) == "golden retriever"
        assert imagenet_classes.class_name(281) == "tabby, tabby cat"
        assert imagenet_classes.class_name(409) == "analog clock"
        assert imagenet_classes.short_name(652) == "military uniform"
        with pytest.raises(IndexError):
            imagenet_classes.class_name(1000)

    def test_shipped_as_package_data(self):
        # class names and key manifests must travel with the package (pyproject's package-data)
        with open(os.path.join(REPO, "pyproject.toml"), encoding="utf-8") as f:
            text = f.read()
        section = text.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
        assert '"pretrained/*.txt"' in section, section


# ============================================================================== download
class TestDownload:
    def test_hint_names_url_and_destination(self, tmp_path):
        line = where_to_get("inception_resnet_v2", str(tmp_path / "w.safetensors"))
        assert "\n" not in line
        assert "https://huggingface.co/timm/inception_resnet_v2.tf_in1k/resolve/main/model.safetensors" in line
        assert str(tmp_path / "w.safetensors") in line

    def test_checksum_and_structure_are_checked(self, tmp_path, monkeypatch):
        src = tmp_path / "src.safetensors"
        save_file({"a": np.ones(3, np.float32)}, src)
        url = src.as_uri()
        checked = []
        monkeypatch.setattr(download_mod, "verify_checkpoint", lambda path, name: checked.append(path))
        dest = tmp_path / "cache" / "v4.safetensors"
        good = download_mod.sha256_of(src)
        assert download_weights("inception_v4", dest, sha256=good, url=url, progress=False) == str(dest)
        assert dest.read_bytes() == src.read_bytes() and len(checked) == 1
        dest.unlink()
        with pytest.raises(download_mod.DownloadError, match="does not match"):
            download_weights("inception_v4", dest, sha256="0" * 64, url=url, progress=False)
        assert not dest.exists() and os.listdir(tmp_path / "cache") == []   # the partial file is gone
        with pytest.raises(download_mod.DownloadError, match="does not match the expected a756a086"):
            download_weights("inception_v4", dest, url=url, progress=False)     # the catalog's pinned hash

        def reject(path, name):
            raise WeightsError("1 missing")
        monkeypatch.setattr(download_mod, "verify_checkpoint", reject)
        with pytest.raises(download_mod.DownloadError, match="structural check"):
            download_weights("inception_v4", dest, sha256=good, url=url, progress=False)
        assert os.listdir(tmp_path / "cache") == []

    def test_unreachable_source(self, tmp_path):
        with pytest.raises(download_mod.DownloadError, match="download failed"):
            download_weights("inception_v4", tmp_path / "w.safetensors", url=(tmp_path / "no").as_uri(),
                             progress=False)


# ============================================================================== the example
class TestClassifyExample:
    SCRIPT = os.path.join(REPO, "examples", "classify_image.py")

    def test_missing_weights_say_where_to_get_them(self, tmp_path):
        missing = tmp_path / "absent.safetensors"
        run = subprocess.run([sys.executable, self.SCRIPT, "--weights", str(missing), "--no-download"],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 2
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1, run.stderr
        assert "https://huggingface.co/timm/inception_v4.tf_in1k/resolve/main/model.safetensors" in lines[0]
        assert str(missing) in lines[0]

    def test_a_cached_file_that_is_not_the_published_one_is_refused(self, tmp_path):
        cache = tmp_path / "cache"
        cache.mkdir()
        (cache / "inception_v4.tf_in1k.safetensors").write_bytes(b"not the published file")
        env = dict(os.environ, MINCEPTION_CACHE=str(cache))
        run = subprocess.run([sys.executable, self.SCRIPT, "--no-download"], capture_output=True, text=True,
                             timeout=120, env=env)
        assert run.returncode == 2 and "Traceback" not in run.stderr
        assert "is not the published inception_v4 file" in run.stderr and "--weights" in run.stderr

    def test_a_damaged_weights_file_is_one_line_not_a_traceback(self, tmp_path):
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(b"garbage!garbage")
        run = subprocess.run([sys.executable, self.SCRIPT, "--weights", str(bad), "--no-download"],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and "Traceback" not in run.stderr
        assert run.stderr.startswith("cannot use the weights:") and len(run.stderr.strip().splitlines()) == 1

    def test_top5_on_a_small_network(self, tmp_path, capsys):
        # End to end at width 0.1 with random timm-format weights: the printout, not the accuracy.
        state = _timm_style_state(_small("inception_v4"), np.random.default_rng(8))
        path = tmp_path / "small.safetensors"
        save_file(state, path)
        photo = tmp_path / "photo.png"
        Image.fromarray(_image(320, 360)).save(photo)
        main = runpy.run_path(self.SCRIPT)["main"]
        assert main([str(photo), "--weights", str(path), "--width", "0.1", "--no-download"]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(lines) == 6 and "inception_v4" in lines[0]
        probs = [float(line.split()[1]) for line in lines[1:]]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        index = int(lines[1].split()[0])
        assert lines[1].endswith(imagenet_classes.class_name(index))
