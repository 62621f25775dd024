"""PyTorch twins of ``minception.models``: the reference side of the training-step and memory benchmarks.

Every class here mirrors one class of ``minception/models`` (same layers, same order, same widths, same
``small_input`` and residual-scale rules) and uses the same submodule names, so that the two networks have the
same state-dict keys and ``load_minception_state(torch_net, our_net)`` copies our weights over one to one.
``python bench/torch_models.py`` checks the twins: equal parameter counts and keys for the four networks (width 0.25,
blocks (2, 2, 2), small_input, 10 classes), and equal outputs in float64 (train-mode batch statistics and eval
mode) after copying the weights across.

PyTorch is NOT a dependency of minception: this file lives in ``bench/`` and runs under a separate virtual
environment (docs/performance.md, "How to reproduce"); ``python bench/torch_models.py`` also builds our networks,
so for it that environment must see minception and NumPy too (``python -m venv --system-site-packages``).
It imports nothing from minception at import time, so a benchmark subprocess that builds only the PyTorch side
loads no NumPy engine code (its memory and threads stay PyTorch's own).

Choices made for the PyTorch side (the faster/leaner of equivalent options, so the comparison is a fair target):
``F.relu(..., inplace=True)`` after batch norm and after the residual sum (as torchvision's Inception does), and
the residual scaling ``x + scale * up`` written as ``torch.add(x, up, alpha=scale)`` (one kernel).
"""
from collections import OrderedDict

import torch
import torch.nn as tnn
import torch.nn.functional as F


# ============================================================================================  the two rules

class Rules:
    """``minception.models.rules.Rules`` (docs/design.md, rules 4 and 6), restated so this file needs no minception."""

    def __init__(self, width=1.0, small_input=False):
        self.width, self.small_input = width, small_input

    def channels(self, c):
        return max(1, int(c * self.width + 0.5))      # floor(c*w + 0.5) for positive numbers

    @property
    def valid(self):
        return "same" if self.small_input else "valid"

    @property
    def valid_pool(self):
        return 1 if self.small_input else 0

    def stem_stride(self, stride):
        return 1 if self.small_input else stride


REDUCTION_A_FILTERS = {
    "inception_v4": dict(k=192, l=224, m=256, n=384),
    "inception_resnet_v1": dict(k=192, l=192, m=256, n=384),
    "inception_resnet_v2": dict(k=256, l=256, m=384, n=384),
}


def _pair(k):
    return (k, k) if isinstance(k, int) else tuple(k)


def _padding(padding, kernel):
    if padding == "same":
        return tuple((k - 1) // 2 for k in kernel)
    if padding == "valid":
        return (0, 0)
    return _pair(padding)


# ============================================================================================  bricks (layers.py)

class ConvBNReLU(tnn.Module):
    """conv (no bias) -> BatchNorm (eps 1e-3, momentum 0.1) -> ReLU; names ``conv``, ``bn`` as ours."""

    def __init__(self, cin, cout, kernel_size, stride=1, padding="same"):
        super().__init__()
        k = _pair(kernel_size)
        self.conv = tnn.Conv2d(cin, cout, k, stride=stride, padding=_padding(padding, k), bias=False)
        self.bn = tnn.BatchNorm2d(cout, eps=1e-3, momentum=0.1)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)


def conv(cin, cout, kernel_size, stride=1, padding="same"):
    return ConvBNReLU(cin, cout, kernel_size, stride, padding)


def up_conv(cin, cout):
    return tnn.Conv2d(cin, cout, 1, bias=True)


def max_pool(rules, stride=2):
    return tnn.MaxPool2d(3, stride=stride, padding=rules.valid_pool)


def avg_pool_same():
    return tnn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


def repeat(name, count, make_block, cin):
    layers = []
    for i in range(count):
        block = make_block(cin)
        cin = block.out_channels
        layers.append((f"{name}_{i + 1}", block))
    return layers, cin


class Head(tnn.Sequential):
    """``ClassifierHead``: global average pool -> dropout -> linear (names global_pool, dropout, fc)."""

    def __init__(self, cin, num_classes, dropout):
        super().__init__(OrderedDict([("global_pool", GlobalAvgPool()), ("dropout", tnn.Dropout(dropout)),
                                      ("fc", tnn.Linear(cin, num_classes))]))


class GlobalAvgPool(tnn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


# ============================================================================================  stems.py

class Mixed3a(tnn.Module):
    def __init__(self, cin, rules):
        super().__init__()
        ch, s = rules.channels, rules.stem_stride(2)
        self.maxpool = max_pool(rules, stride=s)
        self.conv = conv(cin, ch(96), 3, stride=s, padding=rules.valid)
        self.out_channels = cin + ch(96)

    def forward(self, x):
        return torch.cat([self.maxpool(x), self.conv(x)], 1)


class Mixed4a(tnn.Module):
    def __init__(self, cin, rules, variant="paper"):
        super().__init__()
        ch = rules.channels
        first, second = ((7, 1), (1, 7)) if variant == "paper" else ((1, 7), (7, 1))
        self.branch0 = tnn.Sequential(conv(cin, ch(64), 1), conv(ch(64), ch(96), 3, padding=rules.valid))
        self.branch1 = tnn.Sequential(conv(cin, ch(64), 1), conv(ch(64), ch(64), first),
                                      conv(ch(64), ch(64), second), conv(ch(64), ch(96), 3, padding=rules.valid))
        self.out_channels = 2 * ch(96)

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x)], 1)


class Mixed5a(tnn.Module):
    def __init__(self, cin, rules):
        super().__init__()
        ch, s = rules.channels, rules.stem_stride(2)
        self.conv = conv(cin, ch(192), 3, stride=s, padding=rules.valid)
        self.maxpool = max_pool(rules, stride=s)
        self.out_channels = ch(192) + cin

    def forward(self, x):
        return torch.cat([self.conv(x), self.maxpool(x)], 1)


def inception_v4_stem_layers(rules, variant="paper", cin=3):
    ch, s = rules.channels, rules.stem_stride(2)
    layers = [("conv2d_1a", conv(cin, ch(32), 3, stride=s, padding=rules.valid)),
              ("conv2d_2a", conv(ch(32), ch(32), 3, padding=rules.valid)),
              ("conv2d_2b", conv(ch(32), ch(64), 3))]
    m3 = Mixed3a(ch(64), rules)
    m4 = Mixed4a(m3.out_channels, rules, variant)
    m5 = Mixed5a(m4.out_channels, rules)
    return layers + [("mixed_3a", m3), ("mixed_4a", m4), ("mixed_5a", m5)], m5.out_channels


class InceptionV4Stem(tnn.Sequential):
    def __init__(self, rules, variant="paper"):
        layers, self_out = inception_v4_stem_layers(rules, variant)
        super().__init__(OrderedDict(layers))
        self.out_channels = self_out


class InceptionResNetV1Stem(tnn.Sequential):
    def __init__(self, rules):
        ch, s = rules.channels, rules.stem_stride(2)
        super().__init__(OrderedDict([
            ("conv2d_1a", conv(3, ch(32), 3, stride=s, padding=rules.valid)),
            ("conv2d_2a", conv(ch(32), ch(32), 3, padding=rules.valid)),
            ("conv2d_2b", conv(ch(32), ch(64), 3)),
            ("maxpool_3a", max_pool(rules, stride=s)),
            ("conv2d_3b", conv(ch(64), ch(80), 1)),
            ("conv2d_4a", conv(ch(80), ch(192), 3, padding=rules.valid)),
            ("conv2d_4b", conv(ch(192), ch(256), 3, stride=s, padding=rules.valid)),
        ]))
        self.out_channels = ch(256)


class Mixed5b(tnn.Module):
    def __init__(self, cin, rules):
        super().__init__()
        ch = rules.channels
        self.branch0 = conv(cin, ch(96), 1)
        self.branch1 = tnn.Sequential(conv(cin, ch(48), 1), conv(ch(48), ch(64), 5))
        self.branch2 = tnn.Sequential(conv(cin, ch(64), 1), conv(ch(64), ch(96), 3), conv(ch(96), ch(96), 3))
        self.branch3 = tnn.Sequential(avg_pool_same(), conv(cin, ch(64), 1))
        self.out_channels = ch(96) + ch(64) + ch(96) + ch(64)

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


def inception_resnet_v2_released_stem_layers(rules):
    ch, s = rules.channels, rules.stem_stride(2)
    m5b = Mixed5b(ch(192), rules)
    return [("conv2d_1a", conv(3, ch(32), 3, stride=s, padding=rules.valid)),
            ("conv2d_2a", conv(ch(32), ch(32), 3, padding=rules.valid)),
            ("conv2d_2b", conv(ch(32), ch(64), 3)),
            ("maxpool_3a", max_pool(rules, stride=s)),
            ("conv2d_3b", conv(ch(64), ch(80), 1)),
            ("conv2d_4a", conv(ch(80), ch(192), 3, padding=rules.valid)),
            ("maxpool_5a", max_pool(rules, stride=s)),
            ("mixed_5b", m5b)], m5b.out_channels


# ============================================================================================  inception_blocks.py

def _order(variant, paper, released):
    return paper if variant == "paper" else released


class InceptionA(tnn.Module):
    def __init__(self, cin, rules):
        super().__init__()
        ch = rules.channels
        self.branch0 = conv(cin, ch(96), 1)
        self.branch1 = tnn.Sequential(conv(cin, ch(64), 1), conv(ch(64), ch(96), 3))
        self.branch2 = tnn.Sequential(conv(cin, ch(64), 1), conv(ch(64), ch(96), 3), conv(ch(96), ch(96), 3))
        self.branch3 = tnn.Sequential(avg_pool_same(), conv(cin, ch(96), 1))
        self.out_channels = 4 * ch(96)

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class InceptionB(tnn.Module):
    def __init__(self, cin, rules, variant="paper"):
        super().__init__()
        ch = rules.channels
        a, b = _order(variant, ((1, 7), (7, 1)), ((7, 1), (1, 7)))
        self.branch0 = conv(cin, ch(384), 1)
        self.branch1 = tnn.Sequential(conv(cin, ch(192), 1), conv(ch(192), ch(224), (1, 7)),
                                      conv(ch(224), ch(256), (7, 1)))
        self.branch2 = tnn.Sequential(conv(cin, ch(192), 1), conv(ch(192), ch(192), a), conv(ch(192), ch(224), b),
                                      conv(ch(224), ch(224), a), conv(ch(224), ch(256), b))
        self.branch3 = tnn.Sequential(avg_pool_same(), conv(cin, ch(128), 1))
        self.out_channels = ch(384) + ch(256) + ch(256) + ch(128)

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class InceptionC(tnn.Module):
    def __init__(self, cin, rules, variant="paper"):
        super().__init__()
        ch = rules.channels
        a, b = _order(variant, ((1, 3), (3, 1)), ((3, 1), (1, 3)))
        self.branch0 = conv(cin, ch(256), 1)
        self.branch1_0 = conv(cin, ch(384), 1)
        self.branch1_1a = conv(ch(384), ch(256), (1, 3))
        self.branch1_1b = conv(ch(384), ch(256), (3, 1))
        self.branch2_0 = conv(cin, ch(384), 1)
        self.branch2_1 = conv(ch(384), ch(448), a)
        self.branch2_2 = conv(ch(448), ch(512), b)
        self.branch2_3a = conv(ch(512), ch(256), (1, 3))
        self.branch2_3b = conv(ch(512), ch(256), (3, 1))
        self.branch3 = tnn.Sequential(avg_pool_same(), conv(cin, ch(256), 1))
        self.out_channels = 6 * ch(256)

    def forward(self, x):
        x0 = self.branch0(x)
        x1 = self.branch1_0(x)
        x1 = torch.cat([self.branch1_1a(x1), self.branch1_1b(x1)], 1)
        x2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))
        x2 = torch.cat([self.branch2_3a(x2), self.branch2_3b(x2)], 1)
        return torch.cat([x0, x1, x2, self.branch3(x)], 1)


# ============================================================================================  reductions.py

class ReductionA(tnn.Module):
    def __init__(self, cin, rules, k, l, m, n):
        super().__init__()
        ch = rules.channels
        self.branch0 = conv(cin, ch(n), 3, stride=2, padding=rules.valid)
        self.branch1 = tnn.Sequential(conv(cin, ch(k), 1), conv(ch(k), ch(l), 3),
                                      conv(ch(l), ch(m), 3, stride=2, padding=rules.valid))
        self.branch2 = max_pool(rules)
        self.out_channels = ch(n) + ch(m) + cin

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


class ReductionB(tnn.Module):
    def __init__(self, cin, rules):
        super().__init__()
        ch = rules.channels
        self.branch0 = tnn.Sequential(conv(cin, ch(192), 1), conv(ch(192), ch(192), 3, stride=2, padding=rules.valid))
        self.branch1 = tnn.Sequential(conv(cin, ch(256), 1), conv(ch(256), ch(256), (1, 7)),
                                      conv(ch(256), ch(320), (7, 1)),
                                      conv(ch(320), ch(320), 3, stride=2, padding=rules.valid))
        self.branch2 = max_pool(rules)
        self.out_channels = ch(192) + ch(320) + cin

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


class InceptionResNetReductionB(tnn.Module):
    FILTERS = {1: (384, 256, 256, 256), 2: (384, 288, 288, 320)}

    def __init__(self, cin, rules, version):
        super().__init__()
        ch = rules.channels
        c0, c1, c2a, c2b = self.FILTERS[version]
        self.branch0 = tnn.Sequential(conv(cin, ch(256), 1), conv(ch(256), ch(c0), 3, stride=2, padding=rules.valid))
        self.branch1 = tnn.Sequential(conv(cin, ch(256), 1), conv(ch(256), ch(c1), 3, stride=2, padding=rules.valid))
        self.branch2 = tnn.Sequential(conv(cin, ch(256), 1), conv(ch(256), ch(c2a), 3),
                                      conv(ch(c2a), ch(c2b), 3, stride=2, padding=rules.valid))
        self.branch3 = max_pool(rules)
        self.out_channels = ch(c0) + ch(c1) + ch(c2b) + cin

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


# ============================================================================================  resnet_blocks.py

class InceptionResNetBlock(tnn.Module):
    """``relu(x + scale * conv2d(branches(x)))`` (no ReLU when ``relu`` is False)."""

    def __init__(self, scale=None, relu=True):
        super().__init__()
        self.scale = 1.0 if scale is None else float(scale)
        self.relu = bool(relu)

    def forward(self, x):
        out = torch.add(x, self.conv2d(self.branches(x)), alpha=self.scale)
        return F.relu(out, inplace=True) if self.relu else out


class InceptionResNetA(InceptionResNetBlock):
    def __init__(self, cin, rules, version, scale=None, relu=True):
        super().__init__(scale, relu)
        ch = rules.channels
        c2a, c2b = (32, 32) if version == 1 else (48, 64)
        self.branch0 = conv(cin, ch(32), 1)
        self.branch1 = tnn.Sequential(conv(cin, ch(32), 1), conv(ch(32), ch(32), 3))
        self.branch2 = tnn.Sequential(conv(cin, ch(32), 1), conv(ch(32), ch(c2a), 3), conv(ch(c2a), ch(c2b), 3))
        self.conv2d = up_conv(ch(32) + ch(32) + ch(c2b), cin)
        self.out_channels = cin

    def branches(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


class InceptionResNetB(InceptionResNetBlock):
    def __init__(self, cin, rules, version, scale=None, relu=True):
        super().__init__(scale, relu)
        ch = rules.channels
        c0, c1a, c1b, c1c = (128, 128, 128, 128) if version == 1 else (192, 128, 160, 192)
        self.branch0 = conv(cin, ch(c0), 1)
        self.branch1 = tnn.Sequential(conv(cin, ch(c1a), 1), conv(ch(c1a), ch(c1b), (1, 7)),
                                      conv(ch(c1b), ch(c1c), (7, 1)))
        self.conv2d = up_conv(ch(c0) + ch(c1c), cin)
        self.out_channels = cin

    def branches(self, x):
        return torch.cat([self.branch0(x), self.branch1(x)], 1)


class InceptionResNetC(InceptionResNetBlock):
    def __init__(self, cin, rules, version, scale=None, relu=True):
        super().__init__(scale, relu)
        ch = rules.channels
        c1b, c1c = (192, 192) if version == 1 else (224, 256)
        self.branch0 = conv(cin, ch(192), 1)
        self.branch1 = tnn.Sequential(conv(cin, ch(192), 1), conv(ch(192), ch(c1b), (1, 3)),
                                      conv(ch(c1b), ch(c1c), (3, 1)))
        self.conv2d = up_conv(ch(192) + ch(c1c), cin)
        self.out_channels = cin

    def branches(self, x):
        return torch.cat([self.branch0(x), self.branch1(x)], 1)


# ============================================================================================  the networks

def _scales(residual_scale):
    return (None, None, None) if residual_scale is None else tuple(residual_scale)


def inception_v4(num_classes=1000, width=1.0, blocks=(4, 7, 3), small_input=False, dropout=0.2, variant="paper"):
    """Twin of ``models.inception_v4`` (both variants; "released" uses timm's names features.N, last_linear)."""
    a, b, c = blocks
    rules = Rules(width, small_input)
    if variant == "paper":
        stem = InceptionV4Stem(rules, variant)
        stem_layers, ch = [("stem", stem)], stem.out_channels
    else:
        stem_layers, ch = inception_v4_stem_layers(rules, variant)
    layers = list(stem_layers)
    more, ch = repeat("inception_a", a, lambda cin: InceptionA(cin, rules), ch)
    layers += more
    red_a = ReductionA(ch, rules, **REDUCTION_A_FILTERS["inception_v4"])
    layers.append(("reduction_a", red_a))
    more, ch = repeat("inception_b", b, lambda cin: InceptionB(cin, rules, variant), red_a.out_channels)
    layers += more
    red_b = ReductionB(ch, rules)
    layers.append(("reduction_b", red_b))
    more, ch = repeat("inception_c", c, lambda cin: InceptionC(cin, rules, variant), red_b.out_channels)
    layers += more
    if variant == "paper":
        return tnn.Sequential(OrderedDict(layers + [("head", Head(ch, num_classes, dropout))]))
    return tnn.Sequential(OrderedDict([
        ("features", tnn.Sequential(*[m for _, m in layers])),
        ("global_pool", GlobalAvgPool()), ("head_drop", tnn.Dropout(dropout)),
        ("last_linear", tnn.Linear(ch, num_classes))]))


def inception_resnet_v1(num_classes=1000, width=1.0, blocks=(5, 10, 5), small_input=False,
                        residual_scale=(0.17, 0.10, 0.20), dropout=0.2):
    """Twin of ``models.inception_resnet_v1``."""
    a, b, c = blocks
    sa, sb, sc = _scales(residual_scale)
    rules = Rules(width, small_input)
    stem = InceptionResNetV1Stem(rules)
    layers = [("stem", stem)]
    more, ch = repeat("inception_resnet_a", a, lambda cin: InceptionResNetA(cin, rules, 1, sa), stem.out_channels)
    layers += more
    red_a = ReductionA(ch, rules, **REDUCTION_A_FILTERS["inception_resnet_v1"])
    layers.append(("reduction_a", red_a))
    more, ch = repeat("inception_resnet_b", b, lambda cin: InceptionResNetB(cin, rules, 1, sb), red_a.out_channels)
    layers += more
    red_b = InceptionResNetReductionB(ch, rules, 1)
    layers.append(("reduction_b", red_b))
    more, ch = repeat("inception_resnet_c", c, lambda cin: InceptionResNetC(cin, rules, 1, sc), red_b.out_channels)
    layers += more
    return tnn.Sequential(OrderedDict(layers + [("head", Head(ch, num_classes, dropout))]))


def inception_resnet_v2(num_classes=1000, width=1.0, blocks=None, small_input=False,
                        residual_scale=(0.17, 0.10, 0.20), dropout=0.2, variant="paper"):
    """Twin of ``models.inception_resnet_v2`` (variant "paper" or "released")."""
    sa, sb, sc = _scales(residual_scale)
    rules = Rules(width, small_input)
    ch_ = rules.channels
    if variant == "paper":
        a, b, c = blocks or (5, 10, 5)
        stem = InceptionV4Stem(rules, "paper")
        layers = [("stem", stem)]
        more, ch = repeat("inception_resnet_a", a, lambda cin: InceptionResNetA(cin, rules, 2, sa), stem.out_channels)
        layers += more
        red_a = ReductionA(ch, rules, **REDUCTION_A_FILTERS["inception_resnet_v2"])
        layers.append(("reduction_a", red_a))
        more, ch = repeat("inception_resnet_b", b, lambda cin: InceptionResNetB(cin, rules, 2, sb),
                          red_a.out_channels)
        layers += more
        red_b = InceptionResNetReductionB(ch, rules, 2)
        layers.append(("reduction_b", red_b))
        more, ch = repeat("inception_resnet_c", c, lambda cin: InceptionResNetC(cin, rules, 2, sc),
                          red_b.out_channels)
        layers += more
        return tnn.Sequential(OrderedDict(layers + [("head", Head(ch, num_classes, dropout))]))
    a, b, c = blocks or (10, 20, 10)
    stem_layers, ch = inception_resnet_v2_released_stem_layers(rules)
    b35, ch = repeat("block35", a, lambda cin: InceptionResNetA(cin, rules, 2, sa), ch)
    mixed_6a = ReductionA(ch, rules, **REDUCTION_A_FILTERS["inception_resnet_v2"])
    b17, ch = repeat("block17", b, lambda cin: InceptionResNetB(cin, rules, 2, sb), mixed_6a.out_channels)
    mixed_7a = InceptionResNetReductionB(ch, rules, 2)
    b8, ch = repeat("block8", c - 1, lambda cin: InceptionResNetC(cin, rules, 2, sc), mixed_7a.out_channels)
    block8 = InceptionResNetC(ch, rules, 2, scale=1.0, relu=False)
    return tnn.Sequential(OrderedDict(stem_layers + [
        ("repeat", tnn.Sequential(*[m for _, m in b35])), ("mixed_6a", mixed_6a),
        ("repeat_1", tnn.Sequential(*[m for _, m in b17])), ("mixed_7a", mixed_7a),
        ("repeat_2", tnn.Sequential(*[m for _, m in b8])), ("block8", block8),
        ("conv2d_7b", conv(ch, ch_(1536), 1)),
        ("global_pool", GlobalAvgPool()), ("head_drop", tnn.Dropout(dropout)),
        ("classif", tnn.Linear(ch_(1536), num_classes))]))


#: the four networks of the benchmarks: name -> (factory keywords added to the common ones)
NETWORKS = {
    "inception_v4": (inception_v4, {}),
    "inception_resnet_v1": (inception_resnet_v1, {}),
    "inception_resnet_v2": (inception_resnet_v2, {}),
    "inception_resnet_v2_released": (inception_resnet_v2, {"variant": "released"}),
}

#: the scaled configuration of issue 6 (CIFAR-sized)
SCALED = dict(num_classes=10, width=0.25, blocks=(2, 2, 2), small_input=True)


def build(name, **kwargs):
    """The PyTorch twin of network ``name`` (a key of ``NETWORKS``) with ``kwargs`` (e.g. ``**SCALED``)."""
    factory, extra = NETWORKS[name]
    return factory(**kwargs, **extra)


def build_minception(name, **kwargs):
    """Our network ``name`` with ``kwargs`` (``step.build_minception``; imports minception when called)."""
    from step import build_minception as build_ours
    return build_ours(name, **kwargs)


def load_minception_state(torch_net, our_net, dtype=torch.float32):
    """Copy every parameter and buffer of ``our_net`` (a minception Module) into ``torch_net`` (same keys).

    Raises KeyError when the key sets differ and ValueError on a shape mismatch: both mean the twin is wrong.
    """
    import numpy as np
    ours = {k: v for k, v in our_net.state_dict().items() if not k.endswith("rng_state")}   # dropout streams
    theirs = torch_net.state_dict()
    if set(ours) != set(theirs):
        only_ours = sorted(set(ours) - set(theirs))[:10]
        only_torch = sorted(set(theirs) - set(ours))[:10]
        raise KeyError(f"state-dict keys differ: only minception {only_ours}, only torch {only_torch}")
    new = {}
    for k, v in ours.items():
        a = np.asarray(v)
        if tuple(a.shape) != tuple(theirs[k].shape):
            raise ValueError(f"{k}: minception {a.shape} vs torch {tuple(theirs[k].shape)}")
        t = torch.from_numpy(a.copy())
        new[k] = t if k.endswith("num_batches_tracked") else t.to(dtype)
    torch_net.load_state_dict(new)
    return torch_net


def count_parameters(torch_net):
    return sum(p.numel() for p in torch_net.parameters())


# ============================================================================================  self-check

def _compare(name, kwargs, batch=4, size=32, seed=0):
    """Parameter counts, keys and float64 outputs (train and eval mode) of our network vs its twin."""
    import numpy as np
    from autograd import Tensor, no_grad
    ours = build_minception(name, **kwargs)
    twin = build(name, **kwargs)
    n_ours, n_twin = ours.num_parameters(), count_parameters(twin)
    rng = np.random.default_rng(seed)
    # random BN statistics and affine parameters, so that eval mode is not an identity
    state = ours.state_dict()                      # copies: changed here, then loaded back
    for key, arr in state.items():
        if key.endswith("running_var"):
            arr[...] = rng.uniform(0.5, 1.5, arr.shape)
        elif key.endswith("running_mean") or key.endswith("bn.bias"):
            arr[...] = rng.normal(0, 0.1, arr.shape)
        elif key.endswith("bn.weight"):
            arr[...] = rng.uniform(0.8, 1.2, arr.shape)
    ours.load_state_dict(state)
    ours.to(dtype=np.float64)
    twin = load_minception_state(twin.double(), ours, torch.float64)
    x = rng.standard_normal((batch, 3, size, size))
    results = {}
    for mode in ("eval", "train"):
        ours.train(mode == "train")
        twin.train(mode == "train")
        with no_grad():
            y_ours = ours(Tensor(x)).data
        with torch.no_grad():
            y_twin = twin(torch.from_numpy(x)).numpy()
        results[mode] = _rel_err(y_ours, y_twin)
    # gradients of every parameter for the same random projection of the (train-mode) output
    ours.train(), twin.train()
    out = ours(Tensor(x))
    r = rng.standard_normal(out.shape)
    (out * Tensor(r)).sum().backward()
    (twin(torch.from_numpy(x)) * torch.from_numpy(r)).sum().backward()
    grads_twin = {k: p.grad.numpy() for k, p in twin.named_parameters()}
    # relative to each parameter's largest gradient, but at least 1e-6 of the largest of all: some gradients are
    # exactly zero in exact arithmetic (a bias feeding a batch norm), and their rounding noise is not an error
    floor = 1e-6 * max(float(np.max(np.abs(g))) for g in grads_twin.values())
    results["grad"] = max(float(np.max(np.abs(p.grad - grads_twin[k]))) / max(float(np.max(np.abs(grads_twin[k]))), floor)
                          for k, p in ours.named_parameters())
    return n_ours, n_twin, results


def _rel_err(a, b):
    import numpy as np
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-300))


def main():
    import argparse
    parser = argparse.ArgumentParser(description="Check that the PyTorch twins mirror minception.models.")
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--full", action="store_true", help="also compare parameter counts at full size")
    args = parser.parse_args()
    kwargs = dict(SCALED, dropout=0.0)
    print(f"config: {SCALED}, dropout 0 for the comparison; float64; batch 4")
    print("relative errors: max |ours - torch| / max |torch| of the logits (train mode: batch statistics; eval:\n"
          "random running statistics) and, worst over all parameters, of the gradients of sum(r * logits)")
    print(f"{'network':30s} {'params ours':>12s} {'params torch':>12s} {'logits train':>13s} {'logits eval':>12s} "
          f"{'grads':>9s}")
    ok = True
    for name in args.networks.split(","):
        n_ours, n_twin, err = _compare(name, kwargs)
        good = n_ours == n_twin and max(err.values()) < 1e-9
        ok &= good
        print(f"{name:30s} {n_ours:12,d} {n_twin:12,d} {err['train']:13.2e} {err['eval']:12.2e} {err['grad']:9.2e}"
              f"  {'ok' if good else 'MISMATCH'}")
    if args.full:
        print("full size (width 1, 1000 classes), parameter counts only:")
        for name in args.networks.split(","):
            n_ours = build_minception(name).num_parameters()
            n_twin = count_parameters(build(name))
            ok &= n_ours == n_twin
            print(f"{name:30s} {n_ours:12,d} {n_twin:12,d}  {'ok' if n_ours == n_twin else 'MISMATCH'}")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
