"""Parameter counts, names and layer settings of the three networks: no forward pass needed.

Expected numbers: counted from the paper's figures and TF-slim's released graphs; they reproduce timm's
42.68 M / 55.84 M and Keras' exact Inception-ResNet-v2 total.
"""
import functools
from pathlib import Path

import numpy as np
import pytest

from minception import models, nn
from minception.models import Rules

PRETRAINED = Path(models.__file__).resolve().parent.parent / "pretrained"


BUILDERS = {
    "v4-paper": lambda: models.inception_v4(),
    "v4-released": lambda: models.inception_v4(variant="released"),
    "ir-v1": lambda: models.inception_resnet_v1(),
    "ir-v2-paper": lambda: models.inception_resnet_v2(),
    "ir-v2-released": lambda: models.inception_resnet_v2(variant="released"),
}


@functools.lru_cache(maxsize=None)
def full_size(name):
    """Each width-1 network built once per test session (about a second each: 23-56 M He-initialised weights)."""
    return BUILDERS[name]()


def count(module):
    return sum(int(np.prod(p.shape)) for p in module.parameters())


# ---------------------------------------------------------------------------------------------- whole networks
@pytest.mark.parametrize("name, expected", [
    ("v4-paper", 42_679_816),
    ("v4-released", 42_679_816),
    ("ir-v1", 22_756_328),
    ("ir-v2-paper", 32_433_928),
    ("ir-v2-released", 55_843_464),
])
def test_total_parameter_counts_at_width_1(name, expected):
    model = full_size(name)
    assert model.num_parameters() == expected
    assert count(model) == expected


def test_default_blocks_and_stage_widths():
    v4 = full_size("v4-paper")
    assert [name for name, _ in v4.named_children()] == (
        ["stem"] + [f"inception_a_{i}" for i in range(1, 5)] + ["reduction_a"]
        + [f"inception_b_{i}" for i in range(1, 8)] + ["reduction_b"]
        + [f"inception_c_{i}" for i in range(1, 4)] + ["head"])
    assert (v4.stem.out_channels, v4.reduction_a.out_channels, v4.reduction_b.out_channels) == (384, 1024, 1536)

    v1 = full_size("ir-v1")
    assert sum(name.startswith("inception_resnet_a_") for name, _ in v1.named_children()) == 5
    assert sum(name.startswith("inception_resnet_b_") for name, _ in v1.named_children()) == 10
    assert sum(name.startswith("inception_resnet_c_") for name, _ in v1.named_children()) == 5
    assert (v1.stem.out_channels, v1.reduction_a.out_channels, v1.reduction_b.out_channels) == (256, 896, 1792)

    v2 = full_size("ir-v2-paper")
    assert sum(name.startswith("inception_resnet_c_") for name, _ in v2.named_children()) == 5
    assert (v2.stem.out_channels, v2.reduction_a.out_channels, v2.reduction_b.out_channels) == (384, 1152, 2144)
    assert v2.head.fc.weight.shape == (1000, 2144)

    released = full_size("ir-v2-released")
    assert (len(released.repeat), len(released.repeat_1), len(released.repeat_2)) == (10, 20, 9)
    assert (released.mixed_5b.out_channels, released.mixed_6a.out_channels,
            released.mixed_7a.out_channels) == (320, 1088, 2080)


# ---------------------------------------------------------------------------------------------------------- blocks
@pytest.mark.parametrize("build, expected", [
    (lambda: models.InceptionV4Stem(Rules()), 605_728),
    (lambda: models.InceptionA(384, Rules()), 317_632),
    (lambda: models.ReductionA(384, Rules(), **models.REDUCTION_A_FILTERS["inception_v4"]), 2_306_112),
    (lambda: models.InceptionB(1024, Rules()), 2_936_256),
    (lambda: models.ReductionB(1024, Rules()), 2_747_392),
    (lambda: models.InceptionC(1536, Rules()), 4_553_088),
    (lambda: models.ClassifierHead(1536, 1000), 1_537_000),
    (lambda: models.InceptionResNetA(320, Rules(), version=2), 123_168),
    (lambda: models.InceptionResNetB(1088, Rules(), version=2), 1_126_784),
    (lambda: models.InceptionResNetC(2080, Rules(), version=2), 2_035_424),
    (lambda: models.inception_resnet_v2(variant="released", blocks=(0, 0, 1)).conv2d_7b, 3_197_952),
], ids=["v4-stem", "inception-a", "reduction-a-v4", "inception-b", "reduction-b-v4", "inception-c", "fc",
        "block35", "block17", "block8", "conv2d_7b"])
def test_block_parameter_counts(build, expected):
    assert build().num_parameters() == expected


def test_every_conv_is_conv_bn_relu_except_the_up_convs():
    model = models.inception_resnet_v2(width=0.125, blocks=(1, 1, 1))
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            if name.endswith(".conv2d"):                     # the residual up conv: bias, no BN
                assert m.bias is not None and m.kernel_size == (1, 1)
            else:                                            # inside a ConvBNReLU
                assert name.endswith(".conv") and m.bias is None
        if isinstance(m, nn.BatchNorm2d):
            assert m.eps == 1e-3
            assert m.weight is not None and m.bias is not None


# ---------------------------------------------------------------------------------------------- released names
def _manifest(filename):
    shapes = {}
    for line in (PRETRAINED / filename).read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape = line.split("\t")
        shapes[key] = tuple(int(s) for s in shape.split(",")) if shape else ()
    return shapes


@pytest.mark.parametrize("name, manifest", [
    ("v4-released", "timm_inception_v4_keys.txt"),
    ("ir-v2-released", "timm_inception_resnet_v2_keys.txt"),
])
def test_released_state_dict_matches_timm_keys_and_shapes(name, manifest):
    ours = {k: tuple(v.shape) for k, v in full_size(name).state_dict().items()
            if not k.endswith(("num_batches_tracked", "rng_state"))}      # (rng_state: nn.Dropout's stream)
    expected = _manifest(manifest)
    assert sorted(set(expected) - set(ours)) == []
    assert sorted(set(ours) - set(expected)) == []
    assert {k: s for k, s in ours.items() if s != expected[k]} == {}
    assert list(ours) == list(expected)          # even timm's order


def test_released_names_spot_checks():
    """A few keys read off timm's source (timm/models/inception_v4.py, inception_resnet_v2.py)."""
    v4 = dict((k, p.shape) for k, p in full_size("v4-released").named_parameters())
    assert v4["features.3.conv.conv.weight"] == (96, 64, 3, 3)            # Mixed3a: maxpool, conv
    assert v4["features.4.branch1.1.conv.weight"] == (64, 64, 1, 7)       # Mixed4a: 1x7 before 7x1
    assert v4["features.13.branch2.1.conv.weight"] == (192, 192, 7, 1)    # InceptionB: 7x1 first
    assert v4["features.21.branch2_1.conv.weight"] == (448, 384, 3, 1)    # InceptionC: 3x1 448
    assert v4["features.21.branch3.1.conv.weight"] == (256, 1536, 1, 1)
    assert v4["last_linear.weight"] == (1000, 1536)
    ir = dict((k, p.shape) for k, p in full_size("ir-v2-released").named_parameters())
    assert ir["mixed_5b.branch1.1.conv.weight"] == (64, 48, 5, 5)
    assert ir["repeat.9.conv2d.weight"] == (320, 128, 1, 1)
    assert ir["repeat_1.19.branch1.2.conv.weight"] == (192, 160, 7, 1)
    assert ir["repeat_2.8.conv2d.bias"] == (2080,)
    assert ir["block8.conv2d.weight"] == (2080, 448, 1, 1)
    assert ir["conv2d_7b.conv.weight"] == (1536, 2080, 1, 1)
    assert ir["classif.weight"] == (1000, 1536)


# ---------------------------------------------------------------------------------------------- kernel orders
def _kernels(seq):
    return [unit.conv.kernel_size for unit in seq]


def test_kernel_orders_paper_versus_released():
    paper, released = Rules(), Rules()
    assert _kernels(models.Mixed4a(160, paper, "paper").branch1) == [(1, 1), (7, 1), (1, 7), (3, 3)]
    assert _kernels(models.Mixed4a(160, released, "released").branch1) == [(1, 1), (1, 7), (7, 1), (3, 3)]
    assert _kernels(models.InceptionB(64, Rules(0.125), "paper").branch2) == [(1, 1), (1, 7), (7, 1), (1, 7), (7, 1)]
    assert _kernels(models.InceptionB(64, Rules(0.125), "released").branch2) == [(1, 1), (7, 1), (1, 7), (7, 1),
                                                                                  (1, 7)]
    c_paper, c_released = models.InceptionC(64, Rules(0.125), "paper"), models.InceptionC(64, Rules(0.125), "released")
    assert (c_paper.branch2_1.conv.kernel_size, c_paper.branch2_2.conv.kernel_size) == ((1, 3), (3, 1))
    assert (c_released.branch2_1.conv.kernel_size, c_released.branch2_2.conv.kernel_size) == ((3, 1), (1, 3))
    assert c_paper.branch2_1.conv.out_channels == 56 and c_paper.branch2_2.conv.out_channels == 64   # 448, 512 x 1/8


# ---------------------------------------------------------------------------------------------- the rules
def test_width_rule():
    assert [Rules(0.5).channels(c) for c in (1, 2, 3, 5, 96)] == [1, 1, 2, 3, 48]   # floor(c*w + 0.5): 3*0.5 -> 2
    assert [Rules(0.0625).channels(c) for c in (32, 48, 80, 96, 1536)] == [2, 3, 5, 6, 96]
    assert Rules(0.1).channels(3) == 1                                               # never 0
    assert Rules(2).channels(7) == 14
    for bad in (0, -1, float("nan"), "1", True):
        with pytest.raises(ValueError, match="width"):
            Rules(bad)


def test_scaled_block_counts_follow_the_width_rule():
    # Inception-A at width 1/2 on a 37-channel input: the paper's 96/64 filters become 48/32.
    block = models.InceptionA(37, Rules(0.5))
    expected = (37 * 48 + 2 * 48) + (37 * 32 + 2 * 32 + 32 * 48 * 9 + 2 * 48) \
        + (37 * 32 + 2 * 32 + 32 * 48 * 9 + 2 * 48 + 48 * 48 * 9 + 2 * 48) + (37 * 48 + 2 * 48)
    assert block.num_parameters() == expected and block.out_channels == 4 * 48
    # Reduction-A: Table 1's k, l, m, n scale; the max-pool branch passes its 37 channels through.
    red = models.ReductionA(37, Rules(0.25), k=256, l=256, m=384, n=384)
    assert red.out_channels == 96 + 96 + 37
    # The up conv follows the block's input width, whatever the width multiplier.
    for cls, version in [(models.InceptionResNetA, 1), (models.InceptionResNetB, 2), (models.InceptionResNetC, 2)]:
        block = cls(37, Rules(0.25), version=version)
        assert block.conv2d.weight.shape[0] == 37 and block.conv2d.bias.shape == (37,)
        assert block.out_channels == 37


def test_width_scales_whole_networks():
    small = models.inception_resnet_v2(variant="released", width=0.25, blocks=(1, 1, 1))
    assert small.conv2d_1a.conv.out_channels == 8 and small.mixed_5b.out_channels == 80
    assert small.mixed_6a.out_channels == 96 + 96 + 80 and small.conv2d_7b.conv.out_channels == 384
    assert small.classif.weight.shape == (1000, 384)


def test_small_input_changes_strides_and_valid_paddings_not_counts():
    for build in (models.inception_v4, models.inception_resnet_v1, models.inception_resnet_v2,
                  lambda **kw: models.inception_resnet_v2(variant="released", **kw)):
        big = build(width=0.125, blocks=(1, 1, 1))
        small = build(width=0.125, blocks=(1, 1, 1), small_input=True)
        assert big.num_parameters() == small.num_parameters()
    v4 = models.inception_v4(width=0.125, blocks=(1, 1, 1), small_input=True)
    assert v4.stem.conv2d_1a.conv.stride == (1, 1) and v4.stem.conv2d_1a.conv.padding == (1, 1)
    assert v4.stem.mixed_3a.maxpool.stride == (1, 1) and v4.stem.mixed_3a.maxpool.padding == (1, 1)
    assert v4.reduction_a.branch0.conv.stride == (2, 2) and v4.reduction_a.branch0.conv.padding == (1, 1)
    assert v4.reduction_b.branch2.stride == (2, 2) and v4.reduction_b.branch2.padding == (1, 1)
    big = models.inception_v4(width=0.125, blocks=(1, 1, 1))
    assert big.stem.conv2d_1a.conv.stride == (2, 2) and big.stem.conv2d_1a.conv.padding == (0, 0)
    assert big.reduction_a.branch0.conv.padding == (0, 0)


def test_residual_scales_and_the_released_last_block():
    v1 = models.inception_resnet_v1(width=0.0625, blocks=(1, 1, 2))
    assert (v1.inception_resnet_a_1.scale, v1.inception_resnet_b_1.scale, v1.inception_resnet_c_2.scale) == \
        (0.17, 0.10, 0.20)
    assert all(m.relu for m in v1.modules() if isinstance(m, models.InceptionResNetBlock))
    unscaled = models.inception_resnet_v2(width=0.0625, blocks=(1, 1, 1), residual_scale=None)
    assert [m.scale for m in unscaled.modules() if isinstance(m, models.InceptionResNetBlock)] == [1.0, 1.0, 1.0]
    mixed = models.inception_resnet_v1(width=0.0625, blocks=(1, 1, 1), residual_scale=(0.3, None, 0.1))
    assert [m.scale for m in mixed.modules() if isinstance(m, models.InceptionResNetBlock)] == [0.3, 1.0, 0.1]
    released = models.inception_resnet_v2(variant="released", width=0.0625, blocks=(1, 1, 3))
    assert [(m.scale, m.relu) for m in released.repeat_2] == [(0.2, True), (0.2, True)]
    assert (released.block8.scale, released.block8.relu) == (1.0, False)


@pytest.mark.parametrize("call, match", [
    (lambda: models.inception_v4(blocks=(1, 2)), "blocks"),
    (lambda: models.inception_v4(blocks=(1, -1, 1)), "blocks"),
    (lambda: models.inception_v4(variant="slim"), "variant"),
    (lambda: models.inception_v4(num_classes=0), "num_classes"),
    (lambda: models.inception_v4(dropout=1.0), "dropout"),
    (lambda: models.inception_v4(width=0), "width"),
    (lambda: models.inception_resnet_v1(residual_scale=(0.1, 0.2)), "residual_scale"),
    (lambda: models.inception_resnet_v2(variant="released", blocks=(1, 1, 0)), "at least 1"),
    (lambda: models.inception_resnet_v2(variant="tf"), "variant"),
    (lambda: models.InceptionResNetA(32, Rules(), version=3), "version"),
])
def test_bad_arguments_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.fixture(autouse=True, scope="module")
def _free_full_size_models():
    yield
    full_size.cache_clear()          # about 0.8 GB of weights: not for the rest of the test session
