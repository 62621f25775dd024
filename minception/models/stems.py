"""The stems: the layers from the 299x299x3 image to the first 35x35 grid.

* ``InceptionV4Stem`` — paper Fig 3, shared by Inception-v4 and (in the paper) Inception-ResNet-v2: 35x35x384.
* ``InceptionResNetV1Stem`` — paper Fig 14: 35x35x256.
* ``inception_resnet_v2_released_stem_layers`` — TF-slim's Inception-v3-like stem of the released Inception-ResNet-v2,
  ending with ``Mixed5b`` (an Inception-v3 "A" block): 35x35x320.

Layer names follow TF-slim's scopes (``Conv2d_1a_3x3`` -> ``conv2d_1a``, ``Mixed_3a`` -> ``mixed_3a``), which is
also how timm names them. Spatial sizes in the comments are for a 299x299 input; with ``small_input`` every
stride becomes 1 and every 'V' becomes "same", so a 32x32 image stays 32x32.
"""
from collections import OrderedDict

import ops
from minception import nn

from .layers import avg_pool_same, conv, max_pool
from .rules import check_variant


class Mixed3a(nn.Module):
    """Fig 3, first split (TF-slim ``Mixed_3a``), 147x147x64 -> 73x73x160.

    Branches, concatenated in this order:
        maxpool: 3x3 MaxPool, stride 2, V
        conv:    3x3 Conv 96, stride 2, V

    Shape:
        (N, in_channels, H, W) -> (N, in_channels + ch(96), H', W')
    """

    def __init__(self, in_channels, rules):
        super().__init__()
        ch, stride = rules.channels, rules.stem_stride(2)
        self.maxpool = max_pool(rules, stride=stride)
        self.conv = conv(in_channels, ch(96), 3, stride=stride, padding=rules.valid)
        self.out_channels = in_channels + ch(96)

    def forward(self, x):
        return ops.concat([self.maxpool(x), self.conv(x)], axis=1)


class Mixed4a(nn.Module):
    """Fig 3, second split (TF-slim ``Mixed_4a``), 73x73x160 -> 71x71x192.

    Branches, concatenated in this order:
        branch0: 1x1 Conv 64 -> 3x3 Conv 96 V
        branch1: 1x1 Conv 64 -> 7x1 Conv 64 -> 1x7 Conv 64 -> 3x3 Conv 96 V   (paper)
                 1x1 Conv 64 -> 1x7 Conv 64 -> 7x1 Conv 64 -> 3x3 Conv 96 V   (released: TF-slim's order)

    Shape:
        (N, in_channels, H, W) -> (N, 2*ch(96), H - 2, W - 2)   (H, W with small inputs)
    """

    def __init__(self, in_channels, rules, variant="paper"):
        super().__init__()
        check_variant("Mixed4a", variant)
        ch = rules.channels
        first, second = ((7, 1), (1, 7)) if variant == "paper" else ((1, 7), (7, 1))
        self.branch0 = nn.Sequential(
            conv(in_channels, ch(64), 1),
            conv(ch(64), ch(96), 3, padding=rules.valid),
        )
        self.branch1 = nn.Sequential(
            conv(in_channels, ch(64), 1),
            conv(ch(64), ch(64), first),
            conv(ch(64), ch(64), second),
            conv(ch(64), ch(96), 3, padding=rules.valid),
        )
        self.out_channels = 2 * ch(96)

    def forward(self, x):
        return ops.concat([self.branch0(x), self.branch1(x)], axis=1)


class Mixed5a(nn.Module):
    """Fig 3, last split (TF-slim ``Mixed_5a``), 71x71x192 -> 35x35x384.

    Branches, concatenated in this order:
        conv:    3x3 Conv 192, stride 2, V
        maxpool: 3x3 MaxPool, stride 2, V

    Shape:
        (N, in_channels, H, W) -> (N, ch(192) + in_channels, H', W')
    """

    def __init__(self, in_channels, rules):
        super().__init__()
        ch, stride = rules.channels, rules.stem_stride(2)
        self.conv = conv(in_channels, ch(192), 3, stride=stride, padding=rules.valid)
        self.maxpool = max_pool(rules, stride=stride)
        self.out_channels = ch(192) + in_channels

    def forward(self, x):
        return ops.concat([self.conv(x), self.maxpool(x)], axis=1)


def inception_v4_stem_layers(rules, variant="paper", in_channels=3):
    """The six layers of Fig 3 as ``(name, module)`` pairs, and the stem's output channel count.

    The released Inception-v4 puts them (unnamed) at the front of its ``features``; the paper variant wraps
    them in ``InceptionV4Stem``.
    """
    ch, stride = rules.channels, rules.stem_stride(2)
    layers = [
        ("conv2d_1a", conv(in_channels, ch(32), 3, stride=stride, padding=rules.valid)),  # 149x149x32
        ("conv2d_2a", conv(ch(32), ch(32), 3, padding=rules.valid)),                      # 147x147x32
        ("conv2d_2b", conv(ch(32), ch(64), 3)),                                           # 147x147x64
    ]
    mixed_3a = Mixed3a(ch(64), rules)                                                      # 73x73x160
    mixed_4a = Mixed4a(mixed_3a.out_channels, rules, variant)                              # 71x71x192
    mixed_5a = Mixed5a(mixed_4a.out_channels, rules)                                       # 35x35x384
    layers += [("mixed_3a", mixed_3a), ("mixed_4a", mixed_4a), ("mixed_5a", mixed_5a)]
    return layers, mixed_5a.out_channels


class InceptionV4Stem(nn.Sequential):
    """The stem of Inception-v4 and Inception-ResNet-v2 (paper Fig 3), 299x299x3 -> 35x35x384.

    Layers (S = same padding, V = valid, /2 = stride 2):
        conv2d_1a: 3x3 Conv 32 /2 V         -> 149x149x32
        conv2d_2a: 3x3 Conv 32 V            -> 147x147x32
        conv2d_2b: 3x3 Conv 64 S            -> 147x147x64
        mixed_3a:  [3x3 MaxPool /2 V | 3x3 Conv 96 /2 V]                       -> 73x73x160
        mixed_4a:  [1x1 64 -> 3x3 96 V | 1x1 64 -> 7x1 64 -> 1x7 64 -> 3x3 96 V] -> 71x71x192
        mixed_5a:  [3x3 Conv 192 /2 V | MaxPool /2 V]                          -> 35x35x384

    Shape:
        (N, 3, H, W) -> (N, out_channels, H', W'); out_channels = 384 at width 1
    """

    def __init__(self, rules, variant="paper", in_channels=3):
        layers, out_channels = inception_v4_stem_layers(rules, variant, in_channels)
        super().__init__(OrderedDict(layers))
        self.out_channels = out_channels


class InceptionResNetV1Stem(nn.Sequential):
    """The stem of Inception-ResNet-v1 (paper Fig 14), 299x299x3 -> 35x35x256.

    Layers (names as in TF-slim-style code of this net):
        conv2d_1a:  3x3 Conv 32 /2 V   -> 149x149x32
        conv2d_2a:  3x3 Conv 32 V      -> 147x147x32
        conv2d_2b:  3x3 Conv 64 S      -> 147x147x64
        maxpool_3a: 3x3 MaxPool /2 V   -> 73x73x64
        conv2d_3b:  1x1 Conv 80        -> 73x73x80
        conv2d_4a:  3x3 Conv 192 V     -> 71x71x192
        conv2d_4b:  3x3 Conv 256 /2 V  -> 35x35x256

    Shape:
        (N, 3, H, W) -> (N, out_channels, H', W'); out_channels = 256 at width 1
    """

    def __init__(self, rules, in_channels=3):
        ch, stride = rules.channels, rules.stem_stride(2)
        super().__init__(OrderedDict([
            ("conv2d_1a", conv(in_channels, ch(32), 3, stride=stride, padding=rules.valid)),
            ("conv2d_2a", conv(ch(32), ch(32), 3, padding=rules.valid)),
            ("conv2d_2b", conv(ch(32), ch(64), 3)),
            ("maxpool_3a", max_pool(rules, stride=stride)),
            ("conv2d_3b", conv(ch(64), ch(80), 1)),
            ("conv2d_4a", conv(ch(80), ch(192), 3, padding=rules.valid)),
            ("conv2d_4b", conv(ch(192), ch(256), 3, stride=stride, padding=rules.valid)),
        ]))
        self.out_channels = ch(256)


class Mixed5b(nn.Module):
    """TF-slim's ``Mixed_5b`` of the released Inception-ResNet-v2 (not in the paper): an Inception-v3 "A"
    block, 35x35x192 -> 35x35x320.

    Branches, concatenated in this order:
        branch0: 1x1 Conv 96
        branch1: 1x1 Conv 48 -> 5x5 Conv 64
        branch2: 1x1 Conv 64 -> 3x3 Conv 96 -> 3x3 Conv 96
        branch3: 3x3 AvgPool (stride 1, same) -> 1x1 Conv 64

    Shape:
        (N, in_channels, H, W) -> (N, ch(96) + ch(64) + ch(96) + ch(64), H, W)
    """

    def __init__(self, in_channels, rules):
        super().__init__()
        ch = rules.channels
        self.branch0 = conv(in_channels, ch(96), 1)
        self.branch1 = nn.Sequential(
            conv(in_channels, ch(48), 1),
            conv(ch(48), ch(64), 5),
        )
        self.branch2 = nn.Sequential(
            conv(in_channels, ch(64), 1),
            conv(ch(64), ch(96), 3),
            conv(ch(96), ch(96), 3),
        )
        self.branch3 = nn.Sequential(
            avg_pool_same(),
            conv(in_channels, ch(64), 1),
        )
        self.out_channels = ch(96) + ch(64) + ch(96) + ch(64)

    def forward(self, x):
        return ops.concat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], axis=1)


def inception_resnet_v2_released_stem_layers(rules, in_channels=3):
    """TF-slim's stem of the released Inception-ResNet-v2 as ``(name, module)`` pairs (timm keeps them at the
    top level of the network), and its output channel count.

        conv2d_1a:  3x3 Conv 32 /2 V   -> 149x149x32
        conv2d_2a:  3x3 Conv 32 V      -> 147x147x32
        conv2d_2b:  3x3 Conv 64 S      -> 147x147x64
        maxpool_3a: 3x3 MaxPool /2 V   -> 73x73x64
        conv2d_3b:  1x1 Conv 80        -> 73x73x80
        conv2d_4a:  3x3 Conv 192 V     -> 71x71x192
        maxpool_5a: 3x3 MaxPool /2 V   -> 35x35x192
        mixed_5b:   Mixed5b            -> 35x35x320
    """
    ch, stride = rules.channels, rules.stem_stride(2)
    mixed_5b = Mixed5b(ch(192), rules)
    layers = [
        ("conv2d_1a", conv(in_channels, ch(32), 3, stride=stride, padding=rules.valid)),
        ("conv2d_2a", conv(ch(32), ch(32), 3, padding=rules.valid)),
        ("conv2d_2b", conv(ch(32), ch(64), 3)),
        ("maxpool_3a", max_pool(rules, stride=stride)),
        ("conv2d_3b", conv(ch(64), ch(80), 1)),
        ("conv2d_4a", conv(ch(80), ch(192), 3, padding=rules.valid)),
        ("maxpool_5a", max_pool(rules, stride=stride)),
        ("mixed_5b", mixed_5b),
    ]
    return layers, mixed_5b.out_channels
