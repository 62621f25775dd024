"""The bricks every figure of the paper is drawn with: conv boxes, pooling boxes, and the linear "up" conv.

Paper §3.1: "All the convolutions not marked with 'V' in the figures are same-padded"; so ``conv`` defaults
to "same" padding and the 'V' boxes pass ``padding=rules.valid``.
"""
from minception import nn


def conv(in_channels, out_channels, kernel_size, stride=1, padding="same"):
    """One conv box of a figure: conv (no bias) -> BatchNorm (gamma, beta, eps 1e-3) -> ReLU.

    ``kernel_size`` is an int or ``(kh, kw)``: a "1x7" box is ``(1, 7)`` (height 1, width 7).

    Shape:
        (N, in_channels, H, W) -> (N, out_channels, H', W')
    """
    return nn.ConvBNReLU(in_channels, out_channels, kernel_size, stride=stride, padding=padding)


def up_conv(in_channels, out_channels):
    """The residual filter-expansion conv (paper §3.2, "1x1 convolution without activation"):
    a plain 1x1 conv with bias, no BatchNorm, no ReLU.

    Shape:
        (N, in_channels, H, W) -> (N, out_channels, H, W)
    """
    return nn.Conv2d(in_channels, out_channels, 1, bias=True)


def max_pool(rules, stride=2):
    """The "3x3 MaxPool (V)" box of the stems and reductions; padding 1 ("same") for small inputs.

    Stems pass ``stride=rules.stem_stride(2)``; reductions keep stride 2.

    Shape:
        (N, C, H, W) -> (N, C, (H - 3)//stride + 1, (W - 3)//stride + 1), or with small inputs
        (N, C, (H - 1)//stride + 1, (W - 1)//stride + 1)
    """
    return nn.MaxPool2d(3, stride=stride, padding=rules.valid_pool)


def avg_pool_same():
    """The "Avg Pooling" box inside the Inception blocks: 3x3, stride 1, pad 1, padded zeros not counted.

    Shape:
        (N, C, H, W) -> (N, C, H, W)
    """
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


def repeat(name, count, make_block, in_channels):
    """``count`` blocks in a row, named ``name_1 .. name_count``: ``make_block(in_channels)`` builds each.

    Returns the ``(name, block)`` pairs and the output channel count of the last block (``in_channels`` when
    ``count`` is 0).
    """
    layers = []
    for i in range(count):
        block = make_block(in_channels)
        in_channels = block.out_channels
        layers.append((f"{name}_{i + 1}", block))
    return layers, in_channels


def flatten_stages(stages, into=None):
    """Lay out ``stages`` — ``(stage_name, [(name, module), ...])`` pairs — as one flat list of layers.

    Returns the layers and ``stage_ends``, which maps each stage to the path of the module whose output ends
    it (an empty stage ends where the stage before it ends). With ``into`` the layers go into one unnamed
    ``nn.Sequential`` (timm's ``features.0``, ``features.1``, ...), returned in place of the list.
    """
    layers, stage_ends, last = [], {}, None
    for stage, stage_layers in stages:
        for name, module in stage_layers:
            last = f"{into}.{len(layers)}" if into else name
            layers.append((name, module))
        stage_ends[stage] = last
    if into:
        return nn.Sequential(*[module for _, module in layers]), stage_ends
    return layers, stage_ends
