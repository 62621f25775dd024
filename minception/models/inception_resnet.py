"""What every Inception-ResNet shares (paper Fig 15): the residual stages between the stem and the head, and the
paper's layout of a whole network around them.

    stem -> a x Inception-ResNet-A -> Reduction-A -> b x Inception-ResNet-B -> Reduction-B -> c x Inception-ResNet-C
         -> head

``inception_resnet_stages`` builds the five stages for either version; ``InceptionResNet`` lays out a network as
the paper draws it (v1 and the paper's v2 differ only in the stem and the block version). The released
Inception-ResNet-v2 uses the same stages under TF-slim's names (``inception_resnet_v2.py``).
"""
from collections import OrderedDict

from minception import nn

from .heads import ClassifierHead
from .layers import flatten_stages, repeat
from .reductions import REDUCTION_A_FILTERS, InceptionResNetReductionB, ReductionA
from .resnet_blocks import InceptionResNetA, InceptionResNetB, InceptionResNetC
from .rules import Rules, check_network_args, check_residual_scale


def inception_resnet_stages(in_channels, rules, version, blocks, residual_scale, linear_last=False):
    """The stages of Fig 15 between the stem and the head, for Inception-ResNet-v1 (``version=1``: Figs 10, 7, 11,
    12, 13) or -v2 (``version=2``: Figs 16, 7, 17, 18, 19).

    Args:
        in_channels: the stem's output channels.
        rules: the width and small-input ``Rules``.
        blocks: ``(a, b, c)``, the repeats of the A, B and C blocks.
        residual_scale: ``(sA, sB, sC)``, each a number or None (1).
        linear_last: the last C block uses scale 1 and no ReLU (TF-slim's released Inception-ResNet-v2); it is
            counted in ``c``.

    Returns:
        ``[(stage, [(name, block), ...]), ...]`` for the stages "inception_resnet_a", "reduction_a",
        "inception_resnet_b", "reduction_b", "inception_resnet_c" (blocks named ``inception_resnet_a_1`` ...,
        ``reduction_a``, ...), and the output channel count.
    """
    a, b, c = blocks
    scale_a, scale_b, scale_c = residual_scale
    stages = []

    layers, channels = repeat("inception_resnet_a", a, lambda cin: InceptionResNetA(cin, rules, version, scale=scale_a),
                              in_channels)
    stages.append(("inception_resnet_a", layers))
    reduction_a = ReductionA(channels, rules, **REDUCTION_A_FILTERS[f"inception_resnet_v{version}"])
    stages.append(("reduction_a", [("reduction_a", reduction_a)]))

    layers, channels = repeat("inception_resnet_b", b, lambda cin: InceptionResNetB(cin, rules, version, scale=scale_b),
                              reduction_a.out_channels)
    stages.append(("inception_resnet_b", layers))
    reduction_b = InceptionResNetReductionB(channels, rules, version)
    stages.append(("reduction_b", [("reduction_b", reduction_b)]))

    layers, channels = repeat("inception_resnet_c", c - 1 if linear_last else c,
                              lambda cin: InceptionResNetC(cin, rules, version, scale=scale_c),
                              reduction_b.out_channels)
    if linear_last:
        layers.append((f"inception_resnet_c_{c}", InceptionResNetC(channels, rules, version, scale=1.0, relu=False)))
    stages.append(("inception_resnet_c", layers))
    return stages, channels


class InceptionResNet(nn.Sequential):
    """An Inception-ResNet as the paper lays it out (Fig 15): ``stem``, the blocks of ``inception_resnet_stages``
    under their stage names, ``head``. The base of ``InceptionResNetV1`` and ``InceptionResNetV2``.

    Args:
        name: the factory's name, for error messages.
        version: 1 or 2 (the blocks' filter counts).
        make_stem: ``make_stem(rules)`` builds the stem module (with an ``out_channels`` attribute).
        the rest: as ``inception_resnet_v1``.

    ``stage_ends`` maps each stage to the path of the module whose output ends it.

    Shape:
        (N, 3, H, W) -> (N, num_classes)
    """

    def __init__(self, name, version, make_stem, num_classes, width, blocks, small_input, residual_scale, dropout):
        blocks = check_network_args(name, num_classes, blocks, dropout)
        scales = check_residual_scale(name, residual_scale)
        rules = Rules(width, small_input)
        stem = make_stem(rules)
        stages, channels = inception_resnet_stages(stem.out_channels, rules, version, blocks, scales)
        named, stage_ends = flatten_stages([("stem", [("stem", stem)])] + stages)
        named.append(("head", ClassifierHead(channels, num_classes, dropout)))
        super().__init__(OrderedDict(named))
        self.rules = rules
        self.num_features = channels
        self.stage_ends = stage_ends
