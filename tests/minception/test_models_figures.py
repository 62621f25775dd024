"""Each block computes what its figure draws.

The figures of the paper (and TF-slim's graph for the released variants) are written out below as plain NumPy:
a conv box is ``relu(batch_norm(conv(x)))`` with the box's kernel, stride and padding; a "Filter concat" is
``np.concatenate`` of the branches in the documented order; a residual block is ``relu(x + s * up(concat))``
with the scale on the branch. Each block, built at a tiny width in float64 with random batch-norm parameters
and statistics, must give these numbers to 1e-10. The NumPy code reads the block's parameters by their names
and uses nothing of the engine, so it pins *what* a block computes, not how:

* which output channels come from which branch (a concatenation in the wrong order fails here even when every
  branch has the same width, as in Inception-A);
* the residual scale multiplies the branch, not the shortcut;
* every kernel shape, stride and 'V'/same padding of the figure (299x299 geometry, and the small-input rule).

Counts, shapes and gradient checks cannot see these: a block with two branches swapped has the same counts,
shapes and a correct gradient of what it (wrongly) computes.
"""
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from autograd import Tensor, no_grad
from minception import models, nn
from minception.models import Rules
from minception.models.stems import inception_resnet_v2_released_stem_layers, inception_v4_stem_layers

WIDTH = 0.0625
LARGE = Rules(WIDTH, small_input=False)       # the paper's 299x299 geometry: 'V' is valid, stems stride 2
SMALL = Rules(WIDTH, small_input=True)        # 32x32 geometry: 'V' is same, stems stride 1
ch = LARGE.channels


# --------------------------------------------------------------------------------------- the figures' bricks
def conv2d(x, w, stride=(1, 1), padding=(0, 0)):
    """Cross-correlation, x: (N, C, H, W), w: (O, C, kh, kw) -> (N, O, H', W')."""
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = sliding_window_view(xp, w.shape[2:], axis=(2, 3))[:, :, ::sh, ::sw]
    return np.einsum("nchwij,ocij->nohw", windows, w)


def batch_norm(y, bn, training):
    if training:        # normalise with the batch's statistics (biased variance)
        mean, var = y.mean(axis=(0, 2, 3)), y.var(axis=(0, 2, 3))
    else:
        mean, var = bn.running_mean, bn.running_var
    gamma, beta = bn.weight.data, bn.bias.data
    return ((y - mean[:, None, None]) / np.sqrt(var[:, None, None] + bn.eps) * gamma[:, None, None]
            + beta[:, None, None])


def relu(y):
    return np.maximum(y, 0.0)


def pair(k):
    return (k, k) if isinstance(k, int) else tuple(k)


class Figure:
    """The boxes of one block, reading the block's parameters by path; ``training`` picks the batch norm."""

    def __init__(self, block, rules, training):
        self.block, self.rules, self.training = block, rules, training

    def conv(self, path, kernel, filters, stride=1, valid=False, stem=False):
        """A conv box "kernel Conv filters" (``stride``; ``valid``: marked 'V'; ``stem``: a stem stride, 1 for
        small inputs) at module ``path`` of the block."""
        kh, kw = pair(kernel)
        if stem and self.rules.small_input:
            stride = 1
        padding = (0, 0) if valid and not self.rules.small_input else ((kh - 1) // 2, (kw - 1) // 2)
        unit = self.block.get_submodule(path)

        def box(x):
            w = unit.conv.weight.data
            assert w.shape == (self.rules.channels(filters), x.shape[1], kh, kw), \
                f"{path}: weight {w.shape}, the figure's box is {kh}x{kw} Conv {filters}"
            return relu(batch_norm(conv2d(x, w, pair(stride), padding), unit.bn, self.training))
        return box

    def max_pool(self, stride=2, stem=False):
        """The "3x3 MaxPool (V)" box: pad 0 (1 with small inputs, padded with -inf)."""
        if stem and self.rules.small_input:
            stride = 1
        p = 1 if self.rules.small_input else 0

        def box(x):
            xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf)
            return sliding_window_view(xp, (3, 3), axis=(2, 3))[:, :, ::stride, ::stride].max(axis=(-2, -1))
        return box

    @staticmethod
    def avg_pool(x):
        """The "Avg Pooling" box of the blocks: 3x3, stride 1, pad 1, padded zeros not counted."""
        total = sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3)).sum((-2, -1))
        count = sliding_window_view(np.pad(np.ones(x.shape[2:]), 1), (3, 3)).sum((-2, -1))
        return total / count

    def up(self, y):
        """The linear 1x1 filter-expansion conv ``conv2d`` (bias, no batch norm, no ReLU)."""
        up = self.block.conv2d
        assert up.weight.shape == (self.block.out_channels, y.shape[1], 1, 1)
        return conv2d(y, up.weight.data) + up.bias.data[:, None, None]


def chain(*boxes):
    def run(x):
        for box in boxes:
            x = box(x)
        return x
    return run


# ------------------------------------------------------------------------------------------------ harness
def randomize(module, seed):
    """float64, random batch-norm gammas, betas and running statistics, random up-conv biases (the initial ones,
    1, 0, 0, 1 and 0, would let a wrong use of them pass)."""
    rng = np.random.default_rng(seed)
    module.to(dtype=np.float64)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = rng.uniform(0.5, 1.5, m.num_features)
            m.bias.data = rng.uniform(-0.5, 0.5, m.num_features)
            m.running_mean[...] = rng.uniform(-0.5, 0.5, m.num_features)
            m.running_var[...] = rng.uniform(0.5, 2.0, m.num_features)
        elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            m.bias.data = rng.uniform(-0.5, 0.5, m.bias.shape)
    return module


def run_block(block, x, training):
    block.train(training)
    with no_grad():
        return block(Tensor(x)).data


def check_concat(block, x, branches, training, label):
    """``branches``: (name, output) pairs in the order of the figure's concat: each branch's channels are where
    the figure puts them."""
    out = run_block(block, x, training)
    assert out.shape[1] == sum(b.shape[1] for _, b in branches), label
    start = 0
    for name, expected in branches:
        stop = start + expected.shape[1]
        np.testing.assert_allclose(out[:, start:stop], expected, rtol=1e-10, atol=1e-10,
                                   err_msg=f"{label}: channels {start}:{stop} should be {name}")
        start = stop


def check_residual(block, fig, x, branches, scale, relu_after, training, label):
    """relu(x + scale * up(concat(branches))), the scale on the branch, no ReLU when ``relu_after`` is False."""
    out = run_block(block, x, training)
    summed = x + scale * fig.up(np.concatenate([b for _, b in branches], axis=1))
    expected = relu(summed) if relu_after else summed
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10, err_msg=label)


def image(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


MODES = pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])


# ---------------------------------------------------------------------------------- Inception-v4 blocks
@MODES
def test_inception_a_is_figure_4(training):
    nn.init.manual_seed(1)
    block = randomize(models.InceptionA(7, LARGE), 1)
    x = image((2, 7, 5, 6))
    f = Figure(block, LARGE, training)
    check_concat(block, x, [
        ("branch0: 1x1 Conv 96", f.conv("branch0", 1, 96)(x)),
        ("branch1: 1x1 Conv 64 -> 3x3 Conv 96", chain(f.conv("branch1.0", 1, 64), f.conv("branch1.1", 3, 96))(x)),
        ("branch2: 1x1 Conv 64 -> 3x3 Conv 96 -> 3x3 Conv 96",
         chain(f.conv("branch2.0", 1, 64), f.conv("branch2.1", 3, 96), f.conv("branch2.2", 3, 96))(x)),
        ("branch3: Avg Pooling -> 1x1 Conv 96", chain(f.avg_pool, f.conv("branch3.1", 1, 96))(x)),
    ], training, "Inception-A")


@MODES
@pytest.mark.parametrize("variant", ["paper", "released"])
def test_inception_b_is_figure_5(variant, training):
    nn.init.manual_seed(2)
    block = randomize(models.InceptionB(9, LARGE, variant), 2)
    x = image((2, 9, 8, 7), seed=2)
    f = Figure(block, LARGE, training)
    a, b = ((1, 7), (7, 1)) if variant == "paper" else ((7, 1), (1, 7))
    check_concat(block, x, [
        ("branch0: 1x1 Conv 384", f.conv("branch0", 1, 384)(x)),
        ("branch1: 1x1 Conv 192 -> 1x7 Conv 224 -> 7x1 Conv 256",
         chain(f.conv("branch1.0", 1, 192), f.conv("branch1.1", (1, 7), 224), f.conv("branch1.2", (7, 1), 256))(x)),
        ("branch2: 1x1 Conv 192 -> a 192 -> b 224 -> a 224 -> b 256",
         chain(f.conv("branch2.0", 1, 192), f.conv("branch2.1", a, 192), f.conv("branch2.2", b, 224),
               f.conv("branch2.3", a, 224), f.conv("branch2.4", b, 256))(x)),
        ("branch3: Avg Pooling -> 1x1 Conv 128", chain(f.avg_pool, f.conv("branch3.1", 1, 128))(x)),
    ], training, f"Inception-B ({variant})")


@MODES
@pytest.mark.parametrize("variant", ["paper", "released"])
def test_inception_c_is_figure_6(variant, training):
    nn.init.manual_seed(3)
    block = randomize(models.InceptionC(11, LARGE, variant), 3)
    x = image((2, 11, 4, 5), seed=3)
    f = Figure(block, LARGE, training)
    a, b = ((1, 3), (3, 1)) if variant == "paper" else ((3, 1), (1, 3))
    x1 = f.conv("branch1_0", 1, 384)(x)
    x2 = chain(f.conv("branch2_0", 1, 384), f.conv("branch2_1", a, 448), f.conv("branch2_2", b, 512))(x)
    check_concat(block, x, [
        ("branch0: 1x1 Conv 256", f.conv("branch0", 1, 256)(x)),
        ("branch1_1a: 1x1 Conv 384 -> 1x3 Conv 256", f.conv("branch1_1a", (1, 3), 256)(x1)),
        ("branch1_1b: 1x1 Conv 384 -> 3x1 Conv 256", f.conv("branch1_1b", (3, 1), 256)(x1)),
        ("branch2_3a: ... -> 1x3 Conv 256", f.conv("branch2_3a", (1, 3), 256)(x2)),
        ("branch2_3b: ... -> 3x1 Conv 256", f.conv("branch2_3b", (3, 1), 256)(x2)),
        ("branch3: Avg Pooling -> 1x1 Conv 256", chain(f.avg_pool, f.conv("branch3.1", 1, 256))(x)),
    ], training, f"Inception-C ({variant})")


# ------------------------------------------------------------------------------------------- reductions
@MODES
@pytest.mark.parametrize("rules", [LARGE, SMALL], ids=["299", "small"])
@pytest.mark.parametrize("network", sorted(models.REDUCTION_A_FILTERS))
def test_reduction_a_is_figure_7(network, rules, training):
    k, l, m, n = (models.REDUCTION_A_FILTERS[network][key] for key in "klmn")
    nn.init.manual_seed(4)
    block = randomize(models.ReductionA(6, rules, k=k, l=l, m=m, n=n), 4)
    x = image((2, 6, 9, 8), seed=4)
    f = Figure(block, rules, training)
    check_concat(block, x, [
        ("branch0: 3x3 Conv n /2 V", f.conv("branch0", 3, n, stride=2, valid=True)(x)),
        ("branch1: 1x1 Conv k -> 3x3 Conv l -> 3x3 Conv m /2 V",
         chain(f.conv("branch1.0", 1, k), f.conv("branch1.1", 3, l), f.conv("branch1.2", 3, m, 2, valid=True))(x)),
        ("branch2: 3x3 MaxPool /2 V", f.max_pool()(x)),
    ], training, f"Reduction-A ({network})")


@MODES
@pytest.mark.parametrize("rules", [LARGE, SMALL], ids=["299", "small"])
def test_reduction_b_is_figure_8(rules, training):
    nn.init.manual_seed(5)
    block = randomize(models.ReductionB(10, rules), 5)
    x = image((2, 10, 9, 10), seed=5)
    f = Figure(block, rules, training)
    check_concat(block, x, [
        ("branch0: 1x1 Conv 192 -> 3x3 Conv 192 /2 V",
         chain(f.conv("branch0.0", 1, 192), f.conv("branch0.1", 3, 192, 2, valid=True))(x)),
        ("branch1: 1x1 Conv 256 -> 1x7 Conv 256 -> 7x1 Conv 320 -> 3x3 Conv 320 /2 V",
         chain(f.conv("branch1.0", 1, 256), f.conv("branch1.1", (1, 7), 256), f.conv("branch1.2", (7, 1), 320),
               f.conv("branch1.3", 3, 320, 2, valid=True))(x)),
        ("branch2: 3x3 MaxPool /2 V", f.max_pool()(x)),
    ], training, "Reduction-B (Inception-v4)")


@MODES
@pytest.mark.parametrize("version, filters", [(1, (384, 256, 256, 256)), (2, (384, 288, 288, 320))],
                         ids=["v1-fig12", "v2-fig18"])
def test_inception_resnet_reduction_b_is_figures_12_and_18(version, filters, training):
    c0, c1, c2a, c2b = filters
    nn.init.manual_seed(6)
    block = randomize(models.InceptionResNetReductionB(8, LARGE, version), 6)
    x = image((2, 8, 7, 9), seed=6)
    f = Figure(block, LARGE, training)
    check_concat(block, x, [
        ("branch0: 1x1 Conv 256 -> 3x3 Conv 384 /2 V",
         chain(f.conv("branch0.0", 1, 256), f.conv("branch0.1", 3, c0, 2, valid=True))(x)),
        ("branch1: 1x1 Conv 256 -> 3x3 Conv /2 V",
         chain(f.conv("branch1.0", 1, 256), f.conv("branch1.1", 3, c1, 2, valid=True))(x)),
        ("branch2: 1x1 Conv 256 -> 3x3 Conv -> 3x3 Conv /2 V",
         chain(f.conv("branch2.0", 1, 256), f.conv("branch2.1", 3, c2a),
               f.conv("branch2.2", 3, c2b, 2, valid=True))(x)),
        ("branch3: 3x3 MaxPool /2 V", f.max_pool()(x)),
    ], training, f"Inception-ResNet-v{version} Reduction-B")


# ------------------------------------------------------------------------------- Inception-ResNet blocks
RESIDUAL = pytest.mark.parametrize("version", [1, 2])


@MODES
@RESIDUAL
def test_inception_resnet_a_is_figures_10_and_16(version, training):
    c2a, c2b = (32, 32) if version == 1 else (48, 64)
    nn.init.manual_seed(7)
    block = randomize(models.InceptionResNetA(12, LARGE, version, scale=0.17), 7)
    x = image((2, 12, 5, 6), seed=7)
    f = Figure(block, LARGE, training)
    check_residual(block, f, x, [
        ("branch0", f.conv("branch0", 1, 32)(x)),
        ("branch1", chain(f.conv("branch1.0", 1, 32), f.conv("branch1.1", 3, 32))(x)),
        ("branch2", chain(f.conv("branch2.0", 1, 32), f.conv("branch2.1", 3, c2a), f.conv("branch2.2", 3, c2b))(x)),
    ], 0.17, True, training, f"Inception-ResNet-v{version}-A")


@MODES
@RESIDUAL
def test_inception_resnet_b_is_figures_11_and_17(version, training):
    c0, c1a, c1b, c1c = (128, 128, 128, 128) if version == 1 else (192, 128, 160, 192)
    nn.init.manual_seed(8)
    block = randomize(models.InceptionResNetB(14, LARGE, version, scale=0.10), 8)
    x = image((2, 14, 8, 7), seed=8)
    f = Figure(block, LARGE, training)
    check_residual(block, f, x, [
        ("branch0", f.conv("branch0", 1, c0)(x)),
        ("branch1", chain(f.conv("branch1.0", 1, c1a), f.conv("branch1.1", (1, 7), c1b),
                          f.conv("branch1.2", (7, 1), c1c))(x)),
    ], 0.10, True, training, f"Inception-ResNet-v{version}-B")


@MODES
@RESIDUAL
def test_inception_resnet_c_is_figures_13_and_19(version, training):
    c1b, c1c = (192, 192) if version == 1 else (224, 256)
    nn.init.manual_seed(9)
    block = randomize(models.InceptionResNetC(13, LARGE, version, scale=0.20), 9)
    x = image((2, 13, 4, 5), seed=9)
    f = Figure(block, LARGE, training)
    check_residual(block, f, x, [
        ("branch0", f.conv("branch0", 1, 192)(x)),
        ("branch1", chain(f.conv("branch1.0", 1, 192), f.conv("branch1.1", (1, 3), c1b),
                          f.conv("branch1.2", (3, 1), c1c))(x)),
    ], 0.20, True, training, f"Inception-ResNet-v{version}-C")


@MODES
def test_released_last_block8_has_scale_1_and_no_relu(training):
    """TF-slim's last Block8: x + up(concat) with scale 1 and no ReLU (the output keeps negative values)."""
    nn.init.manual_seed(10)
    net = models.inception_resnet_v2(variant="released", num_classes=3, width=WIDTH, blocks=(1, 1, 2))
    assert [m.scale for m in (net.repeat[0], net.repeat_1[0], net.repeat_2[0])] == [0.17, 0.10, 0.20]
    assert [m.relu for m in (net.repeat[0], net.repeat_1[0], net.repeat_2[0])] == [True, True, True]
    block = randomize(net.block8, 10)
    x = image((2, block.out_channels, 4, 3), seed=10)
    f = Figure(block, LARGE, training)
    check_residual(block, f, x, [
        ("branch0", f.conv("branch0", 1, 192)(x)),
        ("branch1", chain(f.conv("branch1.0", 1, 192), f.conv("branch1.1", (1, 3), 224),
                          f.conv("branch1.2", (3, 1), 256))(x)),
    ], 1.0, False, training, "released Block8 (last)")
    assert (run_block(block, x, training) < 0).any()


@pytest.mark.parametrize("network", ["inception_resnet_v1", "inception_resnet_v2"])
def test_networks_pass_their_residual_scales_to_the_blocks(network):
    net = getattr(models, network)(num_classes=3, width=WIDTH, blocks=(1, 1, 1), small_input=True,
                                   residual_scale=(0.3, 0.2, 0.1))
    blocks = [m for m in net.modules() if isinstance(m, models.InceptionResNetBlock)]
    assert [(type(m), m.scale, m.relu) for m in blocks] == [
        (models.InceptionResNetA, 0.3, True), (models.InceptionResNetB, 0.2, True),
        (models.InceptionResNetC, 0.1, True)]


# -------------------------------------------------------------------------------------------------- stems
def stem_figure_3(f, x, variant, prefix=""):
    """Fig 3 (the Inception-v4 stem) written out; ``prefix``: where its six layers sit in ``f.block``."""
    first, second = ((7, 1), (1, 7)) if variant == "paper" else ((1, 7), (7, 1))
    p = prefix
    x = chain(f.conv(f"{p}conv2d_1a", 3, 32, 2, valid=True, stem=True), f.conv(f"{p}conv2d_2a", 3, 32, valid=True),
              f.conv(f"{p}conv2d_2b", 3, 64))(x)
    x = np.concatenate([f.max_pool(stem=True)(x), f.conv(f"{p}mixed_3a.conv", 3, 96, 2, True, stem=True)(x)], 1)
    x = np.concatenate([
        chain(f.conv(f"{p}mixed_4a.branch0.0", 1, 64), f.conv(f"{p}mixed_4a.branch0.1", 3, 96, valid=True))(x),
        chain(f.conv(f"{p}mixed_4a.branch1.0", 1, 64), f.conv(f"{p}mixed_4a.branch1.1", first, 64),
              f.conv(f"{p}mixed_4a.branch1.2", second, 64), f.conv(f"{p}mixed_4a.branch1.3", 3, 96, valid=True))(x),
    ], 1)
    return np.concatenate([f.conv(f"{p}mixed_5a.conv", 3, 192, 2, True, stem=True)(x), f.max_pool(stem=True)(x)], 1)


@MODES
@pytest.mark.parametrize("rules", [LARGE, SMALL], ids=["299", "small"])
@pytest.mark.parametrize("variant", ["paper", "released"])
def test_inception_v4_stem_is_figure_3(variant, rules, training):
    nn.init.manual_seed(11)
    layers, _ = inception_v4_stem_layers(rules, variant)
    stem = randomize(nn.Sequential(dict(layers)), 11)
    x = image((2, 3, 39, 41) if not rules.small_input else (2, 3, 9, 8), seed=11)
    expected = stem_figure_3(Figure(stem, rules, training), x, variant)
    np.testing.assert_allclose(run_block(stem, x, training), expected, rtol=1e-10, atol=1e-10)


@MODES
def test_mixed_3a_4a_5a_channel_order(training):
    """The three splits of Fig 3 on their own, channel range by channel range."""
    nn.init.manual_seed(12)
    mixed_3a = randomize(models.Mixed3a(5, LARGE), 12)
    x = image((2, 5, 9, 8), seed=12)
    f = Figure(mixed_3a, LARGE, training)
    check_concat(mixed_3a, x, [("maxpool: 3x3 MaxPool /2 V", f.max_pool()(x)),
                               ("conv: 3x3 Conv 96 /2 V", f.conv("conv", 3, 96, 2, valid=True)(x))],
                 training, "Mixed_3a")
    mixed_5a = randomize(models.Mixed5a(5, LARGE), 13)
    f = Figure(mixed_5a, LARGE, training)
    check_concat(mixed_5a, x, [("conv: 3x3 Conv 192 /2 V", f.conv("conv", 3, 192, 2, valid=True)(x)),
                               ("maxpool: 3x3 MaxPool /2 V", f.max_pool()(x))], training, "Mixed_5a")
    mixed_4a = randomize(models.Mixed4a(5, LARGE, "paper"), 14)
    f = Figure(mixed_4a, LARGE, training)
    check_concat(mixed_4a, x, [
        ("branch0: 1x1 Conv 64 -> 3x3 Conv 96 V",
         chain(f.conv("branch0.0", 1, 64), f.conv("branch0.1", 3, 96, valid=True))(x)),
        ("branch1: 1x1 Conv 64 -> 7x1 Conv 64 -> 1x7 Conv 64 -> 3x3 Conv 96 V",
         chain(f.conv("branch1.0", 1, 64), f.conv("branch1.1", (7, 1), 64), f.conv("branch1.2", (1, 7), 64),
               f.conv("branch1.3", 3, 96, valid=True))(x)),
    ], training, "Mixed_4a")


@MODES
@pytest.mark.parametrize("rules", [LARGE, SMALL], ids=["299", "small"])
def test_inception_resnet_v1_stem_is_figure_14(rules, training):
    nn.init.manual_seed(15)
    stem = randomize(models.InceptionResNetV1Stem(rules), 15)
    x = image((2, 3, 31, 29) if not rules.small_input else (2, 3, 7, 6), seed=15)
    f = Figure(stem, rules, training)
    expected = chain(f.conv("conv2d_1a", 3, 32, 2, valid=True, stem=True), f.conv("conv2d_2a", 3, 32, valid=True),
                     f.conv("conv2d_2b", 3, 64), f.max_pool(stem=True), f.conv("conv2d_3b", 1, 80),
                     f.conv("conv2d_4a", 3, 192, valid=True), f.conv("conv2d_4b", 3, 256, 2, valid=True, stem=True))(x)
    np.testing.assert_allclose(run_block(stem, x, training), expected, rtol=1e-10, atol=1e-10)


@MODES
def test_mixed_5b_is_tf_slims_block(training):
    """Released Inception-ResNet-v2's Mixed_5b (an Inception-v3 A block), channel range by channel range."""
    nn.init.manual_seed(16)
    block = randomize(models.Mixed5b(7, LARGE), 16)
    x = image((2, 7, 6, 5), seed=16)
    f = Figure(block, LARGE, training)
    check_concat(block, x, [
        ("branch0: 1x1 Conv 96", f.conv("branch0", 1, 96)(x)),
        ("branch1: 1x1 Conv 48 -> 5x5 Conv 64", chain(f.conv("branch1.0", 1, 48), f.conv("branch1.1", 5, 64))(x)),
        ("branch2: 1x1 Conv 64 -> 3x3 Conv 96 -> 3x3 Conv 96",
         chain(f.conv("branch2.0", 1, 64), f.conv("branch2.1", 3, 96), f.conv("branch2.2", 3, 96))(x)),
        ("branch3: Avg Pooling -> 1x1 Conv 64", chain(f.avg_pool, f.conv("branch3.1", 1, 64))(x)),
    ], training, "Mixed_5b")


@MODES
@pytest.mark.parametrize("rules", [LARGE, SMALL], ids=["299", "small"])
def test_released_inception_resnet_v2_stem(rules, training):
    nn.init.manual_seed(17)
    layers, _ = inception_resnet_v2_released_stem_layers(rules)
    stem = randomize(nn.Sequential(dict(layers)), 17)
    x = image((2, 3, 31, 33) if not rules.small_input else (2, 3, 7, 6), seed=17)
    f = Figure(stem, rules, training)
    x5 = chain(f.conv("conv2d_1a", 3, 32, 2, valid=True, stem=True), f.conv("conv2d_2a", 3, 32, valid=True),
               f.conv("conv2d_2b", 3, 64), f.max_pool(stem=True), f.conv("conv2d_3b", 1, 80),
               f.conv("conv2d_4a", 3, 192, valid=True), f.max_pool(stem=True))(x)
    expected = np.concatenate([
        f.conv("mixed_5b.branch0", 1, 96)(x5),
        chain(f.conv("mixed_5b.branch1.0", 1, 48), f.conv("mixed_5b.branch1.1", 5, 64))(x5),
        chain(f.conv("mixed_5b.branch2.0", 1, 64), f.conv("mixed_5b.branch2.1", 3, 96),
              f.conv("mixed_5b.branch2.2", 3, 96))(x5),
        chain(f.avg_pool, f.conv("mixed_5b.branch3.1", 1, 64))(x5),
    ], 1)
    np.testing.assert_allclose(run_block(stem, x, training), expected, rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------------------------------- head
def test_classifier_head_is_pool_dropout_linear():
    nn.init.manual_seed(18)
    head = randomize(models.ClassifierHead(6, 4, dropout=0.2), 18)
    x = image((2, 6, 3, 5), seed=18)
    expected = x.mean(axis=(2, 3)) @ head.fc.weight.data.T + head.fc.bias.data
    np.testing.assert_allclose(run_block(head, x, training=False), expected, rtol=1e-12, atol=1e-12)
