"""Contract check calls of the ``loss`` family (``ops/kernels/reference/loss.py``)."""
import numpy as np

from ..reference import loss as reference
from .call import Call

FUNCTIONS = ("softmax_cross_entropy_forward", "softmax_cross_entropy_backward")

#: (N, K, logit scale): a plain batch, one row, and logits large enough to overflow ``exp`` without the shift
SHAPES = [(5, 7, 3.0), (1, 4, 1.0), (6, 3, 1000.0)]


def calls(rng, dtype):
    for n, k, scale in SHAPES:
        logits = (rng.standard_normal((n, k)) * scale).astype(dtype)
        labels = rng.integers(0, k, n).astype(np.int64)
        for smoothing in (0.0, 0.1):
            yield Call("softmax_cross_entropy_forward", dict(logits=logits, labels=labels, label_smoothing=smoothing),
                       ("loss", "log_probs"), shapes={"loss": "() (0-d)", "log_probs": "(N, K)"})
            _, log_probs = reference.softmax_cross_entropy_forward(logits, labels, smoothing)
            gloss = np.asarray(rng.uniform(0.5, 2.0), dtype=dtype)
            yield Call("softmax_cross_entropy_backward", dict(gloss=gloss, log_probs=log_probs, labels=labels,
                                                              label_smoothing=smoothing),
                       ("dlogits",), shapes={"dlogits": "(N, K)"})
