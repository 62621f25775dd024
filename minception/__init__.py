"""minception: layers, the Inception networks, optimizers, data, training and inspection on top of ``autograd``
and ``ops``.

    from minception import nn, models, optim, data
"""
__version__ = "0.1.0"
