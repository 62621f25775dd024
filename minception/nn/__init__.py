"""minception.nn: ``Module`` (the tree of parameters, buffers and submodules) and the layers.

    from minception import nn
    net = nn.Sequential(nn.ConvBNReLU(3, 32, 3, stride=2), nn.MaxPool2d(3, 2), nn.GlobalAvgPool2d(),
                        nn.Linear(32, 10))
    net.summary((1, 3, 64, 64))

Weights start He-normal (std sqrt(2/fan_in)); see ``nn.init`` for why.
"""
from . import init
from .activation import ReLU
from .batchnorm import BatchNorm2d
from .container import Concat, Sequential
from .conv import Conv2d
from .conv_bn_relu import ConvBNReLU
from .dropout import Dropout
from .flatten import Flatten
from .fusion import FusedHead, fuse
from .hooks import ModuleHookInputs, ModuleHookOutputs
from .linear import Linear
from .module import Module, Parameter
from .pooling import AvgPool2d, GlobalAvgPool2d, MaxPool2d
from .state import LoadResult, StateDictError, StateFileError, load_state, load_state_dict, save_state, state_dict
from .summary import summary

__all__ = [
    "Module", "Parameter", "init",
    "Conv2d", "BatchNorm2d", "Linear", "Dropout", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "ReLU", "Flatten",
    "Sequential", "Concat", "ConvBNReLU", "fuse", "FusedHead",
    "state_dict", "load_state_dict", "save_state", "load_state", "LoadResult", "StateDictError", "StateFileError",
    "summary",
    "ModuleHookInputs", "ModuleHookOutputs",
]
