"""The classifier head of all three networks (paper Fig 9 and Fig 15): global average pooling, dropout, and a
fully connected layer with bias (the softmax lives in the loss). No auxiliary head (the paper has none).
"""
from collections import OrderedDict

from minception import nn


class ClassifierHead(nn.Sequential):
    """Average Pooling (8x8 at 299x299, global) -> Dropout (p = 0.2, the paper's "keep 0.8") -> Linear.

    Layers: ``global_pool``, ``dropout``, ``fc``.

    Shape:
        (N, in_channels, H, W) -> (N, num_classes)   (logits)
    """

    def __init__(self, in_channels, num_classes, dropout=0.2):
        super().__init__(OrderedDict([
            ("global_pool", nn.GlobalAvgPool2d()),
            ("dropout", nn.Dropout(dropout)),
            ("fc", nn.Linear(in_channels, num_classes)),
        ]))
