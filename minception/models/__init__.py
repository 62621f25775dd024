"""The three networks of Szegedy et al. 2016, "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning" (arXiv 1602.07261), built from ``minception.nn``.

    from minception import models
    net = models.inception_v4()                                   # the paper's network, 299x299 inputs
    net = models.inception_resnet_v2(variant="released")          # TF-slim's graph, timm's names
    net = models.inception_resnet_v1(num_classes=10, width=0.25, blocks=(1, 2, 1), small_input=True)  # CIFAR

Files, one concept each: ``rules`` (the width and small-input rules), ``layers`` (conv and pool boxes),
``stems``, ``inception_blocks`` (Inception-A/B/C), ``reductions`` (Reduction-A/B), ``resnet_blocks``
(Inception-ResNet-A/B/C and the residual mechanics), ``heads``, ``inception_resnet`` (the stages and layout
both Inception-ResNets share), and one file per network.

A network as built runs one conv per box of the figures; ``net.fuse()`` merges sibling branches' 1x1 convs for
speed (the same numbers; see ``minception.nn.fusion``).
"""
from .heads import ClassifierHead
from .inception_blocks import InceptionA, InceptionB, InceptionC
from .inception_resnet_v1 import InceptionResNetV1, inception_resnet_v1
from .inception_resnet_v2 import InceptionResNetV2, InceptionResNetV2Released, inception_resnet_v2
from .inception_v4 import InceptionV4, inception_v4
from .reductions import REDUCTION_A_FILTERS, InceptionResNetReductionB, ReductionA, ReductionB
from .resnet_blocks import InceptionResNetA, InceptionResNetB, InceptionResNetBlock, InceptionResNetC
from .rules import Rules
from .stems import InceptionResNetV1Stem, InceptionV4Stem, Mixed3a, Mixed4a, Mixed5a, Mixed5b

__all__ = [
    "inception_v4", "inception_resnet_v1", "inception_resnet_v2",
    "InceptionV4", "InceptionResNetV1", "InceptionResNetV2", "InceptionResNetV2Released",
    "InceptionV4Stem", "InceptionResNetV1Stem", "Mixed3a", "Mixed4a", "Mixed5a", "Mixed5b",
    "InceptionA", "InceptionB", "InceptionC", "ReductionA", "ReductionB", "InceptionResNetReductionB",
    "REDUCTION_A_FILTERS", "InceptionResNetBlock", "InceptionResNetA", "InceptionResNetB", "InceptionResNetC",
    "ClassifierHead", "Rules",
]
