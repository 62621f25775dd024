"""minception: layers, the Inception networks, optimizers, data, training and inspection on top of ``autograd``
and ``ops``.

    from minception import nn, models, optim, data
"""
__version__ = "0.1.0"

from autograd.anomaly import register_library

register_library(__name__)     # layer and model code: shown below the user's line in anomaly reports
