"""Inception-v4 (paper Fig 9): stem, 4 x Inception-A, Reduction-A, 7 x Inception-B, Reduction-B,
3 x Inception-C, average pooling, dropout, fully connected. 42,679,816 parameters at width 1 with 1000 classes.
"""
from collections import OrderedDict

from minception import nn

from .heads import ClassifierHead
from .inception_blocks import InceptionA, InceptionB, InceptionC
from .layers import flatten_stages, repeat
from .reductions import REDUCTION_A_FILTERS, ReductionA, ReductionB
from .rules import Rules, check_network_args, check_variant
from .stems import InceptionV4Stem, inception_v4_stem_layers


class InceptionV4(nn.Sequential):
    """Inception-v4 (paper Fig 9).

    ==============  =======================  ===============  ====================
    stage           block                    output at 299    output at 32 (small)
    ==============  =======================  ===============  ====================
    stem            Fig 3                    35x35x384        32x32x384
    inception_a_i   Fig 4, a times           35x35x384        32x32x384
    reduction_a     Fig 7, k,l,m,n = 192,    17x17x1024       16x16x1024
                    224, 256, 384
    inception_b_i   Fig 5, b times           17x17x1024       16x16x1024
    reduction_b     Fig 8                    8x8x1536         8x8x1536
    inception_c_i   Fig 6, c times           8x8x1536         8x8x1536
    head            avg pool, dropout, FC    num_classes
    ==============  =======================  ===============  ====================

    (channel counts at width 1). Module names: variant "paper" uses the stage names of the table
    (``stem``, ``inception_a_1`` .. ``inception_c_3``, ``head``); variant "released" uses timm's names
    (``features.0`` .. ``features.21``, ``global_pool``, ``head_drop``, ``last_linear``) so that the published
    TF-slim weights, as timm distributes them, load one to one, and TF-slim's kernel orders (in Mixed_4a,
    Inception-B and Inception-C).

    ``stage_ends`` maps each stage ("stem", "inception_a", "reduction_a", "inception_b", "reduction_b",
    "inception_c") to the path of the module whose output ends it (for hooks and summaries).

    Shape:
        (N, 3, H, W) -> (N, num_classes)
    """

    def __init__(self, num_classes=1000, width=1.0, blocks=(4, 7, 3), small_input=False, dropout=0.2,
                 variant="paper"):
        a, b, c = check_network_args("inception_v4", num_classes, blocks, dropout)
        check_variant("inception_v4", variant)
        rules = Rules(width, small_input)
        if variant == "paper":
            stem = InceptionV4Stem(rules, variant)
            stem_layers, channels = [("stem", stem)], stem.out_channels
        else:
            stem_layers, channels = inception_v4_stem_layers(rules, variant)
        stages = [("stem", stem_layers)]

        layers, channels = repeat("inception_a", a, lambda cin: InceptionA(cin, rules), channels)
        stages.append(("inception_a", layers))
        reduction_a = ReductionA(channels, rules, **REDUCTION_A_FILTERS["inception_v4"])
        stages.append(("reduction_a", [("reduction_a", reduction_a)]))
        channels = reduction_a.out_channels

        layers, channels = repeat("inception_b", b, lambda cin: InceptionB(cin, rules, variant), channels)
        stages.append(("inception_b", layers))
        reduction_b = ReductionB(channels, rules)
        stages.append(("reduction_b", [("reduction_b", reduction_b)]))
        channels = reduction_b.out_channels

        layers, channels = repeat("inception_c", c, lambda cin: InceptionC(cin, rules, variant), channels)
        stages.append(("inception_c", layers))

        if variant == "paper":
            named, stage_ends = flatten_stages(stages)
            named.append(("head", ClassifierHead(channels, num_classes, dropout)))
        else:
            features, stage_ends = flatten_stages(stages, into="features")
            named = [
                ("features", features),
                ("global_pool", nn.GlobalAvgPool2d()),
                ("head_drop", nn.Dropout(dropout)),
                ("last_linear", nn.Linear(channels, num_classes)),
            ]
        super().__init__(OrderedDict(named))
        self.variant = variant
        self.rules = rules
        self.num_features = channels
        self.stage_ends = stage_ends


def inception_v4(num_classes=1000, width=1.0, blocks=(4, 7, 3), small_input=False, dropout=0.2, variant="paper"):
    """Build Inception-v4 (see ``InceptionV4``).

    Args:
        num_classes: outputs of the final linear layer.
        width: multiplier of every conv's filter count, ``max(1, floor(c*width + 0.5))``.
        blocks: repeats of the Inception-A, -B, -C blocks (paper: 4, 7, 3).
        small_input: 32x32 inputs: stride-1 stem, "same" instead of valid padding (32 -> 16 -> 8).
        dropout: drop probability before the linear layer (paper: keep 0.8).
        variant: "paper" (the figures' kernel orders, paper names) or "released" (TF-slim's graph, timm names).

    Shape:
        (N, 3, 299, 299) -> (N, num_classes); with small_input (N, 3, 32, 32) -> (N, num_classes)
    """
    return InceptionV4(num_classes=num_classes, width=width, blocks=blocks, small_input=small_input,
                       dropout=dropout, variant=variant)
