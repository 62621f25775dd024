"""Softmax cross-entropy with label smoothing, forward and backward, in plain array code: the reference.

Contract of the ``loss`` family (every tier's functions take these arguments and return these results)::

    softmax_cross_entropy_forward(logits, labels, label_smoothing) -> (loss, log_probs)
        logits:    (N, K) float32 or float64
        labels:    (N,) integers in [0, K), on the logits' device
        label_smoothing: a float s in [0, 1)
        loss:      0-d array of logits' dtype, the mean over the N rows
        log_probs: (N, K) logits' dtype, log softmax(logits) (kept by the op for the backward pass)
    softmax_cross_entropy_backward(gloss, log_probs, labels, label_smoothing) -> dlogits
        gloss:     0-d array (the upstream gradient of the loss), logits' dtype
        dlogits:   (N, K) gloss' dtype

They may assume what the op checked (``ops/loss.py``): logits of shape (N, K), labels in range, s in [0, 1).
Neither may modify its inputs.

The math. With ``p = softmax(z)`` for one row ``z`` of K logits, and the *smoothed target*
``q = (1 - s) * onehot(label) + s / K`` (the one-hot label moved a little towards the uniform distribution; the
Inception-v3 paper's label-smoothing regularisation, s = 0.1 in the Inception-v4 recipe), the loss of the row is
the cross-entropy ``-sum_k q_k log p_k``, and the loss is its mean over the N rows. Its gradient is the famous
``dL/dz = (p - q) / N`` (times the upstream ``gloss``).

Stability: ``exp(z)`` overflows for logits above about 88 in float32 (709 in float64). Subtracting the row's
maximum first changes nothing mathematically (softmax is shift-invariant) and makes every exponent <= 0::

    log p = (z - max z) - log(sum(exp(z - max z)))

The course hands out this file with the solution regions (between the ``# --- solution: begin/end ---``
markers) removed: the student writes those lines (``python -m minception.course new DIR``).
"""
from autograd.backend import get_array_module


def smoothed_targets(labels, num_classes, label_smoothing, dtype):
    """``q = (1 - s) * onehot(labels) + s / K``: every row sums to 1.

    Shape:
        labels: (N,) -> q: (N, K) in ``dtype``
    """
    xp = get_array_module(labels)
    n = labels.shape[0]
    q = xp.full((n, num_classes), label_smoothing / num_classes, dtype=dtype)
    q[xp.arange(n), labels] += 1.0 - label_smoothing
    return q


def softmax_cross_entropy_forward(logits, labels, label_smoothing):
    """The mean cross-entropy of ``softmax(logits)`` against the smoothed one-hot ``labels``.

    Task: compute the log-probabilities ``log_probs = log softmax(logits)`` row by row, *stably*, and the loss
    ``-sum(q * log_probs) / N`` with ``q = smoothed_targets(labels, K, label_smoothing, logits.dtype)``.

    Shape:
        logits: (N, K), labels: (N,) ints -> loss: 0-d array of logits' dtype, log_probs: (N, K)

    Formula: ``log_probs = shifted - log(sum_k exp(shifted))`` with ``shifted = logits - max_k logits``.

    Hints: keep the reduced axis with ``keepdims=True`` so that (N, 1) broadcasts against (N, K); try logits of
    1000 in float32: without the shift ``exp`` gives inf and the loss NaN. Return the loss as
    ``xp.asarray(value, dtype=logits.dtype)``.
    """
    xp = get_array_module(logits)
    n, k = logits.shape
    # --- solution: begin ---
    shifted = logits - logits.max(axis=1, keepdims=True)      # subtract the max so exp cannot overflow
    log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    q = smoothed_targets(labels, k, label_smoothing, logits.dtype)
    loss = xp.asarray(-(q * log_probs).sum() / n, dtype=logits.dtype)
    # --- solution: end ---
    return loss, log_probs


def softmax_cross_entropy_backward(gloss, log_probs, labels, label_smoothing):
    """The gradient of the loss for the logits.

    Task: derive ``dL/dlogits`` of ``L = -(1/N) sum_rows sum_k q_k log softmax(z)_k`` and scale it by ``gloss``.

    Shape:
        gloss: 0-d, log_probs: (N, K) (from the forward), labels: (N,) -> dlogits: (N, K) in gloss' dtype

    Formula: ``dlogits = (softmax(z) - q) * gloss / N`` with ``softmax(z) = exp(log_probs)``.

    Hints: ``d log p_k / d z_j = [k == j] - p_j``, and every row of ``q`` sums to 1. Build ``q`` in
    ``gloss.dtype`` with ``smoothed_targets``.
    """
    xp = get_array_module(log_probs)
    n, k = log_probs.shape
    # --- solution: begin ---
    q = smoothed_targets(labels, k, label_smoothing, gloss.dtype)
    return (xp.exp(log_probs) - q) * (gloss / n)
    # --- solution: end ---
