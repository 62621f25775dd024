"""The Inception-v4 blocks: Inception-A (Fig 4, 35x35), Inception-B (Fig 5, 17x17), Inception-C (Fig 6, 8x8).

All convs are same-padded, stride 1; each block keeps the spatial size. Branches are concatenated in
TF-slim's order (1x1, then the deeper branches, the pool branch last); the figures draw the pool branch
first, but a figure's "Filter concat" fixes no channel order. Branch names (``branch0``...) are timm's, so the
released Inception-v4 weights load one to one. ``variant`` picks the kernel order where the paper's figures and
TF-slim differ (the 1x7/7x1 and 1x3/3x1 pairs of the deep branches); the parameter count is the same either way.
"""
import ops
from minception import nn

from .layers import avg_pool_same, conv
from .rules import check_variant


class InceptionA(nn.Module):
    """Inception-A (paper Fig 4), the 35x35 block of Inception-v4: 384 -> 384 channels.

    Branches, concatenated in this order:
        branch0: 1x1 Conv 96
        branch1: 1x1 Conv 64 -> 3x3 Conv 96
        branch2: 1x1 Conv 64 -> 3x3 Conv 96 -> 3x3 Conv 96
        branch3: 3x3 Avg Pooling -> 1x1 Conv 96

    Shape:
        (N, in_channels, H, W) -> (N, 4*ch(96), H, W)
    """

    def __init__(self, in_channels, rules):
        super().__init__()
        ch = rules.channels
        self.branch0 = conv(in_channels, ch(96), 1)
        self.branch1 = nn.Sequential(
            conv(in_channels, ch(64), 1),
            conv(ch(64), ch(96), 3),
        )
        self.branch2 = nn.Sequential(
            conv(in_channels, ch(64), 1),
            conv(ch(64), ch(96), 3),
            conv(ch(96), ch(96), 3),
        )
        self.branch3 = nn.Sequential(
            avg_pool_same(),
            conv(in_channels, ch(96), 1),
        )
        self.out_channels = 4 * ch(96)

    def forward(self, x):
        return ops.concat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], axis=1)


class InceptionB(nn.Module):
    """Inception-B (paper Fig 5), the 17x17 block of Inception-v4: 1024 -> 1024 channels.

    Branches, concatenated in this order:
        branch0: 1x1 Conv 384
        branch1: 1x1 Conv 192 -> 1x7 Conv 224 -> 7x1 Conv 256
        branch2: 1x1 Conv 192 -> 1x7 Conv 192 -> 7x1 Conv 224 -> 1x7 Conv 224 -> 7x1 Conv 256   (paper)
                 1x1 Conv 192 -> 7x1 Conv 192 -> 1x7 Conv 224 -> 7x1 Conv 224 -> 1x7 Conv 256   (released)
        branch3: 3x3 Avg Pooling -> 1x1 Conv 128

    Shape:
        (N, in_channels, H, W) -> (N, ch(384) + ch(256) + ch(256) + ch(128), H, W)
    """

    def __init__(self, in_channels, rules, variant="paper"):
        super().__init__()
        ch = rules.channels
        a, b = ((1, 7), (7, 1)) if check_variant("InceptionB", variant) == "paper" else ((7, 1), (1, 7))
        self.branch0 = conv(in_channels, ch(384), 1)
        self.branch1 = nn.Sequential(
            conv(in_channels, ch(192), 1),
            conv(ch(192), ch(224), (1, 7)),
            conv(ch(224), ch(256), (7, 1)),
        )
        self.branch2 = nn.Sequential(
            conv(in_channels, ch(192), 1),
            conv(ch(192), ch(192), a),
            conv(ch(192), ch(224), b),
            conv(ch(224), ch(224), a),
            conv(ch(224), ch(256), b),
        )
        self.branch3 = nn.Sequential(
            avg_pool_same(),
            conv(in_channels, ch(128), 1),
        )
        self.out_channels = ch(384) + ch(256) + ch(256) + ch(128)

    def forward(self, x):
        return ops.concat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], axis=1)


class InceptionC(nn.Module):
    """Inception-C (paper Fig 6), the 8x8 block of Inception-v4: 1536 -> 1536 channels.

    Branches 1 and 2 end in a split into a 1x3 and a 3x1 conv, whose outputs are concatenated side by side.
    Branches, concatenated in this order:
        branch0:   1x1 Conv 256
        branch1:   branch1_0: 1x1 Conv 384 -> [branch1_1a: 1x3 Conv 256 | branch1_1b: 3x1 Conv 256]
        branch2:   branch2_0: 1x1 Conv 384 -> branch2_1: 1x3 Conv 448 -> branch2_2: 3x1 Conv 512   (paper)
                                           -> branch2_1: 3x1 Conv 448 -> branch2_2: 1x3 Conv 512   (released)
                   -> [branch2_3a: 1x3 Conv 256 | branch2_3b: 3x1 Conv 256]
        branch3:   3x3 Avg Pooling -> 1x1 Conv 256

    Shape:
        (N, in_channels, H, W) -> (N, 6*ch(256), H, W)
    """

    def __init__(self, in_channels, rules, variant="paper"):
        super().__init__()
        ch = rules.channels
        a, b = ((1, 3), (3, 1)) if check_variant("InceptionC", variant) == "paper" else ((3, 1), (1, 3))
        self.branch0 = conv(in_channels, ch(256), 1)

        self.branch1_0 = conv(in_channels, ch(384), 1)
        self.branch1_1a = conv(ch(384), ch(256), (1, 3))
        self.branch1_1b = conv(ch(384), ch(256), (3, 1))

        self.branch2_0 = conv(in_channels, ch(384), 1)
        self.branch2_1 = conv(ch(384), ch(448), a)
        self.branch2_2 = conv(ch(448), ch(512), b)
        self.branch2_3a = conv(ch(512), ch(256), (1, 3))
        self.branch2_3b = conv(ch(512), ch(256), (3, 1))

        self.branch3 = nn.Sequential(
            avg_pool_same(),
            conv(in_channels, ch(256), 1),
        )
        self.out_channels = 6 * ch(256)

    def forward(self, x):
        x0 = self.branch0(x)

        x1 = self.branch1_0(x)
        x1 = ops.concat([self.branch1_1a(x1), self.branch1_1b(x1)], axis=1)

        x2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))
        x2 = ops.concat([self.branch2_3a(x2), self.branch2_3b(x2)], axis=1)

        x3 = self.branch3(x)
        return ops.concat([x0, x1, x2, x3], axis=1)
