"""Inception-ResNet-v2, as drawn in the paper (Fig 15 with Figs 3, 16, 7, 17, 18, 19) and as released in
TF-slim, the graph whose weights were published.

* "paper": the Inception-v4 stem (384 channels), 5 x Inception-ResNet-A, Reduction-A (256, 256, 384, 384) -> 1152,
  10 x Inception-ResNet-B, Reduction-B -> 2144, 5 x Inception-ResNet-C, head. The up-convs follow their input
  (1152 and 2144, not the figures' 1154 and 2048). 32,433,928 parameters at width 1 with 1000 classes.
* "released": an Inception-v3-like stem with Mixed_5b (320 channels), 10 x Block35, Mixed_6a -> 1088,
  20 x Block17, Mixed_7a -> 2080, 9 x Block8 and a last Block8 with scale 1 and no ReLU, Conv2d_7b 1x1 -> 1536,
  head. 55,843,464 parameters (timm's count) at width 1 with 1000 classes.
"""
from collections import OrderedDict
from functools import partial

from minception import nn

from .inception_resnet import InceptionResNet, inception_resnet_stages
from .layers import conv
from .rules import Rules, check_network_args, check_residual_scale, check_variant
from .stems import InceptionV4Stem, inception_resnet_v2_released_stem_layers

DEFAULT_BLOCKS = {"paper": (5, 10, 5), "released": (10, 20, 10)}


class InceptionResNetV2(InceptionResNet):
    """Inception-ResNet-v2 as drawn in the paper (Fig 15 schema).

    ====================  ===========================  ===============  ====================
    stage                 block                        output at 299    output at 32 (small)
    ====================  ===========================  ===============  ====================
    stem                  Fig 3                        35x35x384        32x32x384
    inception_resnet_a_i  Fig 16, a times, scale sA    35x35x384        32x32x384
    reduction_a           Fig 7, k,l,m,n = 256, 256,   17x17x1152       16x16x1152
                          384, 384
    inception_resnet_b_i  Fig 17, b times, scale sB    17x17x1152       16x16x1152
    reduction_b           Fig 18                       8x8x2144         8x8x2144
    inception_resnet_c_i  Fig 19, c times, scale sC    8x8x2144         8x8x2144
    head                  avg pool, dropout, FC        num_classes
    ====================  ===========================  ===============  ====================

    (channel counts at width 1; ``(sA, sB, sC) = residual_scale``). ``stage_ends`` maps each stage to the path of
    the module whose output ends it.

    Shape:
        (N, 3, H, W) -> (N, num_classes)
    """

    def __init__(self, num_classes=1000, width=1.0, blocks=(5, 10, 5), small_input=False,
                 residual_scale=(0.17, 0.10, 0.20), dropout=0.2):
        super().__init__("inception_resnet_v2", 2, partial(InceptionV4Stem, variant="paper"), num_classes, width,
                         blocks, small_input, residual_scale, dropout)
        self.variant = "paper"


class InceptionResNetV2Released(nn.Sequential):
    """Inception-ResNet-v2 as released (TF-slim ``inception_resnet_v2``), with timm's module names so
    that the published weights load one to one.

    ==========================  ==========================================  ===============  ===========
    name                        block                                       output at 299    at 32
    ==========================  ==========================================  ===============  ===========
    conv2d_1a .. maxpool_5a     Inception-v3-like stem                      35x35x192        32x32x192
    mixed_5b                    ``Mixed5b`` (Inception-v3 A block)          35x35x320        32x32x320
    repeat.0 ..                 Block35 = Fig 16, a times, scale sA         35x35x320        32x32x320
    mixed_6a                    Reduction-A, k,l,m,n = 256, 256, 384, 384   17x17x1088       16x16x1088
    repeat_1.0 ..               Block17 = Fig 17, b times, scale sB         17x17x1088       16x16x1088
    mixed_7a                    Reduction-B = Fig 18                        8x8x2080         8x8x2080
    repeat_2.0 ..               Block8 = Fig 19, c - 1 times, scale sC      8x8x2080         8x8x2080
    block8                      Block8, scale 1, no ReLU                    8x8x2080         8x8x2080
    conv2d_7b                   1x1 Conv 1536 (not in the paper)            8x8x1536         8x8x1536
    global_pool, head_drop,     avg pool, dropout, FC                       num_classes
    classif
    ==========================  ==========================================  ===============  ===========

    (channel counts at width 1; ``(sA, sB, sC) = residual_scale``; ``c`` counts the last block, so c >= 1).
    ``stage_ends`` maps each stage to the path of the module whose output ends it.

    Shape:
        (N, 3, H, W) -> (N, num_classes)
    """

    def __init__(self, num_classes=1000, width=1.0, blocks=(10, 20, 10), small_input=False,
                 residual_scale=(0.17, 0.10, 0.20), dropout=0.2):
        a, b, c = check_network_args("inception_resnet_v2", num_classes, blocks, dropout)
        if c < 1:
            raise ValueError(f"inception_resnet_v2(variant='released'): blocks[2] counts the last, unactivated "
                             f"Block8 too, so it must be at least 1, got blocks={tuple(blocks)}")
        scales = check_residual_scale("inception_resnet_v2", residual_scale)
        rules = Rules(width, small_input)
        ch = rules.channels
        stem_layers, channels = inception_resnet_v2_released_stem_layers(rules)
        stages, channels = inception_resnet_stages(channels, rules, 2, (a, b, c), scales, linear_last=True)
        blocks35, mixed_6a, blocks17, mixed_7a, blocks8 = ([m for _, m in layers] for _, layers in stages)
        conv2d_7b = conv(channels, ch(1536), 1)

        super().__init__(OrderedDict(stem_layers + [
            ("repeat", nn.Sequential(*blocks35)),
            ("mixed_6a", mixed_6a[0]),
            ("repeat_1", nn.Sequential(*blocks17)),
            ("mixed_7a", mixed_7a[0]),
            ("repeat_2", nn.Sequential(*blocks8[:-1])),
            ("block8", blocks8[-1]),
            ("conv2d_7b", conv2d_7b),
            ("global_pool", nn.GlobalAvgPool2d()),
            ("head_drop", nn.Dropout(dropout)),
            ("classif", nn.Linear(ch(1536), num_classes)),
        ]))
        self.variant = "released"
        self.rules = rules
        self.num_features = ch(1536)
        self.stage_ends = {
            "stem": "mixed_5b",
            "inception_resnet_a": f"repeat.{a - 1}" if a else "mixed_5b",
            "reduction_a": "mixed_6a",
            "inception_resnet_b": f"repeat_1.{b - 1}" if b else "mixed_6a",
            "reduction_b": "mixed_7a",
            "inception_resnet_c": "block8",
            "conv2d_7b": "conv2d_7b",
        }


def inception_resnet_v2(num_classes=1000, width=1.0, blocks=None, small_input=False,
                        residual_scale=(0.17, 0.10, 0.20), dropout=0.2, variant="paper"):
    """Build Inception-ResNet-v2: ``InceptionResNetV2`` (variant "paper") or ``InceptionResNetV2Released``.

    Args:
        num_classes: outputs of the final linear layer.
        width: multiplier of every conv's filter count, ``max(1, floor(c*width + 0.5))``; up-convs follow
            their block's input width.
        blocks: repeats of the Inception-ResNet-A, -B, -C blocks; None means the variant's default, (5, 10, 5)
            for "paper" and (10, 20, 10) for "released" (whose C count includes the last, unactivated block).
        small_input: 32x32 inputs: stride-1 stem, "same" instead of valid padding (32 -> 16 -> 8).
        residual_scale: the residual scaling of the A, B, C blocks (TF-slim's 0.17, 0.10, 0.20); None or a None
            entry means 1. The released variant's last block always uses 1.
        dropout: drop probability before the linear layer (paper: keep 0.8).
        variant: "paper" or "released".

    Shape:
        (N, 3, 299, 299) -> (N, num_classes); with small_input (N, 3, 32, 32) -> (N, num_classes)
    """
    check_variant("inception_resnet_v2", variant)
    if blocks is None:
        blocks = DEFAULT_BLOCKS[variant]
    cls = InceptionResNetV2 if variant == "paper" else InceptionResNetV2Released
    return cls(num_classes=num_classes, width=width, blocks=blocks, small_input=small_input,
               residual_scale=residual_scale, dropout=dropout)
