"""Inception-ResNet-v1 (paper Fig 15 with Figs 14, 10, 7, 11, 12, 13): stem, 5 x Inception-ResNet-A,
Reduction-A, 10 x Inception-ResNet-B, Reduction-B, 5 x Inception-ResNet-C, average pooling, dropout, fully
connected. 22,756,328 parameters at width 1 with 1000 classes.
"""
from .inception_resnet import InceptionResNet
from .stems import InceptionResNetV1Stem


class InceptionResNetV1(InceptionResNet):
    """Inception-ResNet-v1 (paper Fig 15).

    ====================  ===========================  ===============  ====================
    stage                 block                        output at 299    output at 32 (small)
    ====================  ===========================  ===============  ====================
    stem                  Fig 14                       35x35x256        32x32x256
    inception_resnet_a_i  Fig 10, a times, scale sA    35x35x256        32x32x256
    reduction_a           Fig 7, k,l,m,n = 192, 192,   17x17x896        16x16x896
                          256, 384
    inception_resnet_b_i  Fig 11, b times, scale sB    17x17x896        16x16x896
    reduction_b           Fig 12                       8x8x1792         8x8x1792
    inception_resnet_c_i  Fig 13, c times, scale sC    8x8x1792         8x8x1792
    head                  avg pool, dropout, FC        num_classes
    ====================  ===========================  ===============  ====================

    (channel counts at width 1; ``(sA, sB, sC) = residual_scale``). ``stage_ends`` maps each stage to the path of
    the module whose output ends it.

    Shape:
        (N, 3, H, W) -> (N, num_classes)
    """

    def __init__(self, num_classes=1000, width=1.0, blocks=(5, 10, 5), small_input=False,
                 residual_scale=(0.17, 0.10, 0.20), dropout=0.2):
        super().__init__("inception_resnet_v1", 1, InceptionResNetV1Stem, num_classes, width, blocks, small_input,
                         residual_scale, dropout)


def inception_resnet_v1(num_classes=1000, width=1.0, blocks=(5, 10, 5), small_input=False,
                        residual_scale=(0.17, 0.10, 0.20), dropout=0.2):
    """Build Inception-ResNet-v1 (see ``InceptionResNetV1``).

    Args:
        num_classes: outputs of the final linear layer.
        width: multiplier of every conv's filter count, ``max(1, floor(c*width + 0.5))``; up-convs follow
            their block's input width.
        blocks: repeats of the Inception-ResNet-A, -B, -C blocks (paper: 5, 10, 5).
        small_input: 32x32 inputs: stride-1 stem, "same" instead of valid padding (32 -> 16 -> 8).
        residual_scale: the residual scaling of the A, B, C blocks (TF-slim's 0.17, 0.10, 0.20); None or a
            None entry means 1 (no scaling).
        dropout: drop probability before the linear layer (paper: keep 0.8).

    Shape:
        (N, 3, 299, 299) -> (N, num_classes); with small_input (N, 3, 32, 32) -> (N, num_classes)
    """
    return InceptionResNetV1(num_classes=num_classes, width=width, blocks=blocks, small_input=small_input,
                             residual_scale=residual_scale, dropout=dropout)
