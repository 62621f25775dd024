"""The Inception-ResNet blocks (paper Figs 10, 11, 13 for v1; Figs 16, 17, 19 for v2) and the residual
mechanics they share.

A residual Inception block runs a small Inception block on its input ``x``, concatenates the branches, widens
the result back to ``x``'s channel count with a linear 1x1 "filter-expansion" conv (bias, no BatchNorm, no ReLU;
paper §3.2), scales it (paper §3.3, Fig 20) and adds it to ``x``:

    out = relu(x + scale * up(concat(branches(x))))

The up conv is named ``conv2d`` as in TF-slim (``Conv2d_1x1``) and timm, so released weights load one to one.
Its width is always the block's input width: this resolves the paper's 1154/2048 mismatch (the figures widen
Inception-ResNet-v2's blocks to 1154 and 2048 channels, while the reductions give 1152 and 2144). TF-slim's last
Inception-ResNet-v2 block uses scale 1 and no ReLU (``relu=False``).

The course hands out ``InceptionResNetA`` with its solution regions (between the ``# --- solution: begin/end ---``
markers) removed: the student builds its branches (``python -m minception.course new DIR``).
"""
import ops
from minception import nn

from .layers import conv, up_conv


def _check_version(version):
    if version not in (1, 2):
        raise ValueError(f"models: Inception-ResNet version must be 1 or 2, got {version!r}")


class InceptionResNetBlock(nn.Module):
    """The residual mechanics: ``relu(x + scale * conv2d(branches(x)))``.

    Subclasses build the branches and ``self.conv2d`` (the up conv, output width = input width) and implement
    ``branches(x)`` (the concatenated branch outputs).

    Args:
        scale: the residual scaling constant; None means 1.
        relu: apply the ReLU after the sum (TF-slim's last block of the released Inception-ResNet-v2 does not).

    Shape:
        (N, C, H, W) -> (N, C, H, W)
    """

    def __init__(self, scale=None, relu=True):
        super().__init__()
        self.scale = 1.0 if scale is None else float(scale)
        self.relu = bool(relu)

    def branches(self, x):
        raise NotImplementedError

    def forward(self, x):
        # relu(x + scale * up), as one op: ops.residual_add
        return ops.residual_add(x, self.conv2d(self.branches(x)), self.scale, self.relu)

    def extra_repr(self):
        return f"scale={self.scale:g}, relu={self.relu}"


class InceptionResNetA(InceptionResNetBlock):
    """Inception-ResNet-A, the 35x35 residual block: Fig 10 (v1, 256 channels) and Fig 16 (v2, 384 in the paper;
    TF-slim's ``Block35``, 320 channels).

    Branches, concatenated in this order (v1 / v2 filter counts):
        branch0: 1x1 Conv 32
        branch1: 1x1 Conv 32 -> 3x3 Conv 32
        branch2: 1x1 Conv 32 -> 3x3 Conv 32 / 48 -> 3x3 Conv 32 / 64
    then conv2d: 1x1 Conv in_channels (linear), scaled and added to the input, ReLU.

    Task: in ``__init__``, build the three branches as ``branch0``, ``branch1``, ``branch2`` and the up conv
    ``conv2d`` from nn units, in that order; in ``branches(x)``, run them and concatenate along the channels.
    ``InceptionResNetBlock.forward`` does the rest: ``relu(x + scale * conv2d(branches(x)))``.

    Hints: ``conv(cin, cout, k)`` (``minception/models/layers.py``) is the figure's "Conv" box (conv, batch norm,
    ReLU, "same" padding); ``up_conv(cin, cout)`` the linear 1x1 conv with bias. Filter counts go through
    ``ch = rules.channels`` (the width rule: ``ch(32)``). A branch of several boxes is an ``nn.Sequential``. The
    up conv's input width is the sum of the three branch widths.

    Shape:
        (N, in_channels, H, W) -> (N, in_channels, H, W)
    """

    def __init__(self, in_channels, rules, version, scale=None, relu=True):
        super().__init__(scale, relu)
        _check_version(version)
        ch = rules.channels
        c2a, c2b = (32, 32) if version == 1 else (48, 64)
        # --- solution: begin ---
        self.branch0 = conv(in_channels, ch(32), 1)
        self.branch1 = nn.Sequential(
            conv(in_channels, ch(32), 1),
            conv(ch(32), ch(32), 3),
        )
        self.branch2 = nn.Sequential(
            conv(in_channels, ch(32), 1),
            conv(ch(32), ch(c2a), 3),
            conv(ch(c2a), ch(c2b), 3),
        )
        self.conv2d = up_conv(ch(32) + ch(32) + ch(c2b), in_channels)
        # --- solution: end ---
        self.out_channels = in_channels

    def branches(self, x):
        """The three branches of ``x``, concatenated along the channels: (N, C, H, W) -> (N, 96 or 128, H, W)
        at width 1 (``ops.concat([...], axis=1)``)."""
        # --- solution: begin ---
        return ops.concat([self.branch0(x), self.branch1(x), self.branch2(x)], axis=1)
        # --- solution: end ---


class InceptionResNetB(InceptionResNetBlock):
    """Inception-ResNet-B, the 17x17 residual block: Fig 11 (v1, 896 channels) and Fig 17 (v2, 1152 in the
    paper; TF-slim's ``Block17``, 1088 channels).

    Branches, concatenated in this order (v1 / v2 filter counts):
        branch0: 1x1 Conv 128 / 192
        branch1: 1x1 Conv 128 / 128 -> 1x7 Conv 128 / 160 -> 7x1 Conv 128 / 192
    then conv2d: 1x1 Conv in_channels (linear), scaled and added to the input, ReLU.

    Shape:
        (N, in_channels, H, W) -> (N, in_channels, H, W)
    """

    def __init__(self, in_channels, rules, version, scale=None, relu=True):
        super().__init__(scale, relu)
        _check_version(version)
        ch = rules.channels
        c0, c1a, c1b, c1c = (128, 128, 128, 128) if version == 1 else (192, 128, 160, 192)
        self.branch0 = conv(in_channels, ch(c0), 1)
        self.branch1 = nn.Sequential(
            conv(in_channels, ch(c1a), 1),
            conv(ch(c1a), ch(c1b), (1, 7)),
            conv(ch(c1b), ch(c1c), (7, 1)),
        )
        self.conv2d = up_conv(ch(c0) + ch(c1c), in_channels)
        self.out_channels = in_channels

    def branches(self, x):
        return ops.concat([self.branch0(x), self.branch1(x)], axis=1)


class InceptionResNetC(InceptionResNetBlock):
    """Inception-ResNet-C, the 8x8 residual block: Fig 13 (v1, 1792 channels) and Fig 19 (v2, 2144 in the
    paper; TF-slim's ``Block8``, 2080 channels).

    Branches, concatenated in this order (v1 / v2 filter counts):
        branch0: 1x1 Conv 192
        branch1: 1x1 Conv 192 -> 1x3 Conv 192 / 224 -> 3x1 Conv 192 / 256
    then conv2d: 1x1 Conv in_channels (linear), scaled and added to the input, ReLU (``relu=False``: none).

    Shape:
        (N, in_channels, H, W) -> (N, in_channels, H, W)
    """

    def __init__(self, in_channels, rules, version, scale=None, relu=True):
        super().__init__(scale, relu)
        _check_version(version)
        ch = rules.channels
        c1b, c1c = (192, 192) if version == 1 else (224, 256)
        self.branch0 = conv(in_channels, ch(192), 1)
        self.branch1 = nn.Sequential(
            conv(in_channels, ch(192), 1),
            conv(ch(192), ch(c1b), (1, 3)),
            conv(ch(c1b), ch(c1c), (3, 1)),
        )
        self.conv2d = up_conv(ch(192) + ch(c1c), in_channels)
        self.out_channels = in_channels

    def branches(self, x):
        return ops.concat([self.branch0(x), self.branch1(x)], axis=1)
