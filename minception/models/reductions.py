"""The grid-reduction blocks: Reduction-A (Fig 7, 35x35 -> 17x17) and Reduction-B (Fig 8 for Inception-v4,
Figs 12 and 18 for Inception-ResNet-v1 and -v2; 17x17 -> 8x8).

Each runs stride-2 'V' convs beside a stride-2 max-pool and concatenates, so the channel count grows while the
grid shrinks. With ``small_input`` the 'V' paddings become "same" and the grid halves exactly (32 -> 16 -> 8).
Branch names and order are TF-slim's/timm's (``Mixed_6a``, ``Mixed_7a``).
"""
import ops
from minception import nn

from .layers import conv, max_pool

# Table 1 of the paper: the filter counts of Reduction-A in each network.
REDUCTION_A_FILTERS = {
    "inception_v4": dict(k=192, l=224, m=256, n=384),
    "inception_resnet_v1": dict(k=192, l=192, m=256, n=384),
    "inception_resnet_v2": dict(k=256, l=256, m=384, n=384),
}


class ReductionA(nn.Module):
    """Reduction-A (paper Fig 7 with Table 1's k, l, m, n), 35x35 -> 17x17.

    Branches, concatenated in this order:
        branch0: 3x3 Conv n, stride 2, V
        branch1: 1x1 Conv k -> 3x3 Conv l -> 3x3 Conv m, stride 2, V
        branch2: 3x3 MaxPool, stride 2, V            (passes its in_channels through)

    Shape:
        (N, in_channels, H, W) -> (N, ch(n) + ch(m) + in_channels, H', W'), H' = (H - 3)//2 + 1
        (H' = (H - 1)//2 + 1 with small inputs)
    """

    def __init__(self, in_channels, rules, k, l, m, n):
        super().__init__()
        ch = rules.channels
        self.branch0 = conv(in_channels, ch(n), 3, stride=2, padding=rules.valid)
        self.branch1 = nn.Sequential(
            conv(in_channels, ch(k), 1),
            conv(ch(k), ch(l), 3),
            conv(ch(l), ch(m), 3, stride=2, padding=rules.valid),
        )
        self.branch2 = max_pool(rules)
        self.out_channels = ch(n) + ch(m) + in_channels

    def forward(self, x):
        return ops.concat([self.branch0(x), self.branch1(x), self.branch2(x)], axis=1)


class ReductionB(nn.Module):
    """Reduction-B of Inception-v4 (paper Fig 8), 17x17x1024 -> 8x8x1536.

    Branches, concatenated in this order:
        branch0: 1x1 Conv 192 -> 3x3 Conv 192, stride 2, V
        branch1: 1x1 Conv 256 -> 1x7 Conv 256 -> 7x1 Conv 320 -> 3x3 Conv 320, stride 2, V
        branch2: 3x3 MaxPool, stride 2, V

    Shape:
        (N, in_channels, H, W) -> (N, ch(192) + ch(320) + in_channels, H', W')
    """

    def __init__(self, in_channels, rules):
        super().__init__()
        ch = rules.channels
        self.branch0 = nn.Sequential(
            conv(in_channels, ch(192), 1),
            conv(ch(192), ch(192), 3, stride=2, padding=rules.valid),
        )
        self.branch1 = nn.Sequential(
            conv(in_channels, ch(256), 1),
            conv(ch(256), ch(256), (1, 7)),
            conv(ch(256), ch(320), (7, 1)),
            conv(ch(320), ch(320), 3, stride=2, padding=rules.valid),
        )
        self.branch2 = max_pool(rules)
        self.out_channels = ch(192) + ch(320) + in_channels

    def forward(self, x):
        return ops.concat([self.branch0(x), self.branch1(x), self.branch2(x)], axis=1)


class InceptionResNetReductionB(nn.Module):
    """Reduction-B of Inception-ResNet-v1 (paper Fig 12) and -v2 (paper Fig 18; TF-slim ``Mixed_7a``), 17x17 -> 8x8.

    Branches, concatenated in this order (v1 / v2 filter counts):
        branch0: 1x1 Conv 256 -> 3x3 Conv 384 / 384, stride 2, V
        branch1: 1x1 Conv 256 -> 3x3 Conv 256 / 288, stride 2, V
        branch2: 1x1 Conv 256 -> 3x3 Conv 256 / 288 -> 3x3 Conv 256 / 320, stride 2, V
        branch3: 3x3 MaxPool, stride 2, V

    v1: 896 -> 1792 channels. v2: 1152 -> 2144 (paper), 1088 -> 2080 (released).

    Shape:
        (N, in_channels, H, W) -> (N, out_channels, H', W')
    """

    FILTERS = {1: (384, 256, 256, 256), 2: (384, 288, 288, 320)}

    def __init__(self, in_channels, rules, version):
        super().__init__()
        if version not in self.FILTERS:
            raise ValueError(f"InceptionResNetReductionB: version must be 1 or 2, got {version!r}")
        ch = rules.channels
        c0, c1, c2a, c2b = self.FILTERS[version]
        self.branch0 = nn.Sequential(
            conv(in_channels, ch(256), 1),
            conv(ch(256), ch(c0), 3, stride=2, padding=rules.valid),
        )
        self.branch1 = nn.Sequential(
            conv(in_channels, ch(256), 1),
            conv(ch(256), ch(c1), 3, stride=2, padding=rules.valid),
        )
        self.branch2 = nn.Sequential(
            conv(in_channels, ch(256), 1),
            conv(ch(256), ch(c2a), 3),
            conv(ch(c2a), ch(c2b), 3, stride=2, padding=rules.valid),
        )
        self.branch3 = max_pool(rules)
        self.out_channels = ch(c0) + ch(c1) + ch(c2b) + in_channels

    def forward(self, x):
        return ops.concat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], axis=1)
