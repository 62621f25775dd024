"""The classic mistakes, planted on purpose: how the grader tells the likely cause of a wrong result.

For each exercise the grader knows a few mistakes students make again and again: the padding forgotten, the
kernel offsets i and j swapped, ``=`` where ``+=`` is needed, the biased variance replaced by the unbiased one,
``exp`` overflowing because the row's maximum was not subtracted... Each ``Mistake`` *computes the wrong answer*
(the reference with that one mistake in it) on the very inputs the student's function got. When the student's
result equals it, the mistake is very likely the cause, and the report prints its hint.

A mistake names the function and the result it spoils; ``compute(a)`` takes the call's arguments by name (a
dict of copies) and returns the mistaken value of that result. Results are compared with the tolerance of
``compare.same_values``. The Inception-ResNet-A mistakes are written against the library's block in
``checks.py`` (they need the block's weights).
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np

from minception.optim.rmsprop import rmsprop_update
from ops.kernels.reference import batch_norm, conv2d, im2col, loss, pooling

from .compare import same_values


@dataclass(frozen=True)
class Mistake:
    """One classic mistake: in ``function``, it spoils result ``output``; ``hint`` says what to fix."""
    function: str
    output: str
    hint: str
    compute: Callable


# ---------------------------------------------------------------------------------------------- relu
def _relu_mask_ge(a):
    return a["gy"] * (a["y"] >= 0)


RELU = [
    Mistake("relu", "y", "np.max(x, 0) is a reduction over axis 0; the elementwise maximum is np.maximum(x, 0)",
            lambda a: a["x"].max(axis=0)),
    Mistake("relu_backward", "gx", "the mask is y > 0, not y >= 0: where y == 0 the ReLU was off and no "
            "gradient passes", _relu_mask_ge),
    Mistake("relu_backward", "gx", "gx = gy * (y > 0): multiply by the mask, not by y itself",
            lambda a: a["gy"] * a["y"]),
]


# ---------------------------------------------------------------------------------------------- softmax
def _unstable_log_probs(a):
    z = a["logits"]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        e = np.exp(z)
        return np.log(e / e.sum(axis=1, keepdims=True)).astype(z.dtype)


def _onehot(labels, k, dtype):
    q = np.zeros((labels.shape[0], k), dtype=dtype)
    q[np.arange(labels.shape[0]), labels] = 1
    return q


def _loss_with_targets(make_q, scale=None):
    """The loss with targets ``make_q(labels, K, s, dtype)``; ``scale="N"``: the sum over rows, not the mean."""
    def compute(a):
        z = a["logits"]
        _, log_probs = loss.softmax_cross_entropy_forward(z, a["labels"], a["label_smoothing"])
        q = make_q(a["labels"], z.shape[1], a["label_smoothing"], z.dtype)
        total = -(q * log_probs).sum()
        return np.asarray(total if scale == "N" else total / z.shape[0], dtype=z.dtype)
    return compute


def _dlogits_with_targets(make_q, scale=None):
    """dlogits with targets ``make_q``; ``scale="N"``: not divided by N."""
    def compute(a):
        lp, gloss = a["log_probs"], a["gloss"]
        q = make_q(a["labels"], lp.shape[1], a["label_smoothing"], gloss.dtype)
        return (np.exp(lp) - q) * (gloss if scale == "N" else gloss / lp.shape[0])
    return compute


def _q_over_k_minus_1(labels, k, s, dtype):
    onehot = _onehot(labels, k, dtype)
    return (1 - s) * onehot + s / (k - 1) * (1 - onehot)


def _q_without_uniform(labels, k, s, dtype):
    return (1 - s) * _onehot(labels, k, dtype)


def _q_without_one_minus_s(labels, k, s, dtype):
    return _onehot(labels, k, dtype) + s / k


OVERFLOW = ("exp overflowed: subtract each row's maximum before exp (softmax does not change when every logit "
            "of a row moves by the same amount)")
SMOOTHING_HINT = "label smoothing: q = (1 - s) * onehot + s / K, every class (the label's too) gets s / K"

SOFTMAX = [
    Mistake("softmax_cross_entropy_forward", "log_probs", OVERFLOW, _unstable_log_probs),
    Mistake("softmax_cross_entropy_forward", "loss", "label_smoothing ignored: " + SMOOTHING_HINT,
            _loss_with_targets(lambda labels, k, s, dtype: _onehot(labels, k, dtype))),
    Mistake("softmax_cross_entropy_forward", "loss", "s / (K - 1) on the other classes: " + SMOOTHING_HINT,
            _loss_with_targets(_q_over_k_minus_1)),
    Mistake("softmax_cross_entropy_forward", "loss", "the s / K part is missing: " + SMOOTHING_HINT,
            _loss_with_targets(_q_without_uniform)),
    Mistake("softmax_cross_entropy_forward", "loss", "the (1 - s) factor is missing: " + SMOOTHING_HINT,
            _loss_with_targets(_q_without_one_minus_s)),
    Mistake("softmax_cross_entropy_forward", "loss", "the loss is the mean over the N rows: divide the sum by N",
            _loss_with_targets(loss.smoothed_targets, scale="N")),
    Mistake("softmax_cross_entropy_backward", "dlogits", "label_smoothing ignored in the backward: "
            "dlogits = (softmax - q) * gloss / N with the smoothed q",
            _dlogits_with_targets(lambda labels, k, s, dtype: _onehot(labels, k, dtype))),
    Mistake("softmax_cross_entropy_backward", "dlogits", "the loss is a mean over N rows: divide by N",
            _dlogits_with_targets(loss.smoothed_targets, scale="N")),
    Mistake("softmax_cross_entropy_backward", "dlogits", "multiply by the upstream gradient gloss (chain rule)",
            lambda a: _dlogits_with_targets(loss.smoothed_targets)(dict(a, gloss=np.ones_like(a["gloss"])))),
    Mistake("softmax_cross_entropy_backward", "dlogits", "sign: dlogits = (softmax - q) * gloss / N, not q - "
            "softmax", lambda a: -_dlogits_with_targets(loss.smoothed_targets)(a)),
]


# ---------------------------------------------------------------------------------------------- im2col
def _rows_reordered(cols, c, kh, kw, order):
    """cols with its rows (c, i, j) laid out in another ``order`` of the axes (c=0, i=1, j=2)."""
    return cols.reshape(c, kh, kw, -1).transpose(*order, 3).reshape(cols.shape)


def _im2col_rows(order):
    def compute(a):
        x, (kh, kw) = a["x"], a["kernel_size"]
        cols = im2col.im2col(x, a["kernel_size"], a["stride"], a["padding"])
        return _rows_reordered(cols, x.shape[1], kh, kw, order)
    return compute


def _im2col_columns_nhw_last(a):
    x = a["x"]
    n, _, h, w = x.shape
    cols = im2col.im2col(x, a["kernel_size"], a["stride"], a["padding"])
    (oh, ow) = pooling.out_size((h, w), a["kernel_size"], a["stride"], a["padding"])
    return cols.reshape(-1, n, oh, ow).transpose(0, 2, 3, 1).reshape(cols.shape)


def _col2im_from_rows(order):
    """col2im of a student whose im2col lays rows out in ``order``: the reference col2im of cols read that way."""
    def compute(a):
        n, c, h, w = a["x_shape"]
        kh, kw = a["kernel_size"]
        inverse = tuple(np.argsort(order))
        return im2col.col2im(_rows_reordered(a["cols"], *[(c, kh, kw)[k] for k in order], inverse),
                             a["x_shape"], a["kernel_size"], a["stride"], a["padding"])
    return compute


def _col2im_assign(a):
    """col2im with ``=`` instead of ``+=``: where windows overlap, the last window's entry wins."""
    n, c, h, w = a["x_shape"]
    (kh, kw), (sh, sw), (ph, pw) = a["kernel_size"], a["stride"], a["padding"]
    oh, ow = pooling.out_size((h, w), a["kernel_size"], a["stride"], a["padding"])
    cols = a["cols"].reshape(c, kh, kw, n, oh, ow)
    dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=a["cols"].dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] = cols[:, i, j].transpose(1, 0, 2, 3)
    return dxp[:, :, ph:ph + h, pw:pw + w]


def _col2im_uncropped(a):
    n, c, h, w = a["x_shape"]
    (ph, pw) = a["padding"]
    padded = im2col.col2im(a["cols"], a["x_shape"], a["kernel_size"], a["stride"], a["padding"])
    return np.pad(padded, ((0, 0), (0, 0), (ph, ph), (pw, pw)))   # the shape a missing crop gives


SWAPPED_IJ = ("swapped kernel offsets: the row of (c, i, j) is (c*kh + i)*kw + j, i (down) before j (across)")

IM2COL = [
    Mistake("im2col", "cols", "forgot the padding: pad x with ph rows and pw columns of zeros on every side "
            "before copying the windows", lambda a: im2col.im2col(a["x"], a["kernel_size"], a["stride"], (0, 0))),
    Mistake("im2col", "cols", "the stride is ignored: window (oy, ox) starts at row oy*sh, column ox*sw",
            lambda a: im2col.im2col(a["x"], a["kernel_size"], (1, 1), a["padding"])),
    Mistake("im2col", "cols", SWAPPED_IJ, _im2col_rows((0, 2, 1))),
    Mistake("im2col", "cols", "rows ordered (i, j, c): the channel is the slowest index of a row, "
            "r = (c*kh + i)*kw + j", _im2col_rows((1, 2, 0))),
    Mistake("im2col", "cols", "transposed layout: cols is (C*kh*kw, N*OH*OW), one column per output position",
            lambda a: im2col.im2col(a["x"], a["kernel_size"], a["stride"], a["padding"]).T),
    Mistake("im2col", "cols", "columns ordered (oy, ox, n): the image is the slowest index of a column, "
            "q = (n*OH + oy)*OW + ox", _im2col_columns_nhw_last),
]

COL2IM = [
    Mistake("col2im", "dx", "`=` where `+=` is needed: a pixel in several windows receives the sum of their "
            "entries", _col2im_assign),
    Mistake("col2im", "dx", SWAPPED_IJ, _col2im_from_rows((0, 2, 1))),
    Mistake("col2im", "dx", "the padding is not cropped: return dx_padded[:, :, ph:ph + H, pw:pw + W]",
            _col2im_uncropped),
]


# ---------------------------------------------------------------------------------------------- conv2d
def _conv_no_transpose(a):
    x, wgt = a["x"], a["weight"]
    y = conv2d.forward(x, wgt, None, a["stride"], a["padding"])
    n, cout, oh, ow = y.shape
    y = y.transpose(1, 0, 2, 3).reshape(n, cout, oh, ow)          # Y2d reshaped as if it were (N, Cout, ...)
    return y if a["bias"] is None else y + a["bias"].reshape(1, -1, 1, 1)


def _conv_backward_gy_not_transposed(output):
    def compute(a):
        gy = a["gy"]
        n, cout, oh, ow = gy.shape
        scrambled = gy.reshape(cout, n, oh, ow).transpose(1, 0, 2, 3)   # what gy.reshape(Cout, -1) reads
        dx, dw = conv2d.backward(a["x"], a["weight"], np.ascontiguousarray(scrambled), a["stride"], a["padding"],
                                 True, True)
        return dx if output == "dx" else dw
    return compute


CONV2D = [
    Mistake("forward", "y", "forgot the bias: add bias.reshape(1, Cout, 1, 1)",
            lambda a: conv2d.forward(a["x"], a["weight"], None, a["stride"], a["padding"])),
    Mistake("forward", "y", "Y2d = W2d @ cols is (Cout, N*OH*OW): reshape to (Cout, N, OH, OW), then "
            "transpose to (N, Cout, OH, OW)", _conv_no_transpose),
    Mistake("forward", "y", "the kernel is flipped: a CNN's conv2d is a cross-correlation, w[i, j] meets "
            "x[oy*sh + i, ox*sw + j]",
            lambda a: conv2d.forward(a["x"], np.ascontiguousarray(a["weight"][:, :, ::-1, ::-1]), a["bias"],
                                     a["stride"], a["padding"])),
    Mistake("forward", "y", "forgot the padding",
            lambda a: conv2d.forward(a["x"], a["weight"], a["bias"], a["stride"], (0, 0))),
    Mistake("backward", "dx", "gy is (N, Cout, OH, OW): transpose it to (Cout, N, OH, OW) before the reshape "
            "to (Cout, N*OH*OW)", _conv_backward_gy_not_transposed("dx")),
    Mistake("backward", "dweight", "gy is (N, Cout, OH, OW): transpose it to (Cout, N, OH, OW) before the "
            "reshape to (Cout, N*OH*OW)", _conv_backward_gy_not_transposed("dweight")),
]


# ---------------------------------------------------------------------------------------------- pooling
def _max_pool(a, ties_to_last=False, pad_value=-np.inf, offset_order="row"):
    x, (kh, kw) = a["x"], a["kernel_size"]
    oh, ow = pooling.out_size(x.shape[2:], a["kernel_size"], a["stride"], a["padding"])
    xp_ = pooling.pad_input(x, a["padding"], pad_value)
    best = np.full(x.shape[:2] + (oh, ow), -np.inf, dtype=x.dtype)
    argmax = np.zeros(best.shape, dtype=pooling.argmax_dtype(a["kernel_size"]))
    for ky in range(kh):
        for kx in range(kw):
            v = xp_[pooling.window_slice(ky, kx, a["stride"], (oh, ow))]
            wins = (v >= best) if ties_to_last else (v > best)
            best = np.where(wins, v, best)
            argmax[wins] = ky * kw + kx if offset_order == "row" else kx * kh + ky
    return {"y": best, "argmax": argmax}


def _max_pool_backward(a, assign=False, decode_with_kh=False):
    n, c, h, w = a["x_shape"]
    (kh, kw), (ph, pw) = a["kernel_size"], a["padding"]
    gy, argmax = a["gy"], a["argmax"]
    gxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=gy.dtype)
    for ky in range(kh):
        for kx in range(kw):
            k = ky * kh + kx if decode_with_kh else ky * kw + kx
            sl = pooling.window_slice(ky, kx, a["stride"], gy.shape[2:])
            if assign:
                gxp[sl] = np.where(argmax == k, gy, gxp[sl])
            else:
                gxp[sl] += np.where(argmax == k, gy, 0)
    return gxp[:, :, ph:ph + h, pw:pw + w]


def _avg_flipped(function):
    """Average pooling with ``count_include_pad`` read the other way round."""
    def compute(a):
        geometry = (a["kernel_size"], a["stride"], a["padding"], not a["count_include_pad"])
        if function == "forward":
            return pooling.avg_pool2d_forward(a["x"], *geometry)
        return pooling.avg_pool2d_backward(a["gy"], a["x_shape"], *geometry)
    return compute


def _avg_backward_undivided(a):
    """Each pixel of a window receives the window's whole gradient (not divided by the divisor)."""
    divisor = pooling.avg_pool_divisor(a["x_shape"][2:], a["kernel_size"], a["stride"], a["padding"],
                                       a["count_include_pad"], a["gy"].dtype)
    return pooling.avg_pool2d_backward(a["gy"] * divisor, a["x_shape"], a["kernel_size"], a["stride"], a["padding"],
                                       a["count_include_pad"])


def _avg_backward_assign(a):
    n, c, h, w = a["x_shape"]
    (ph, pw) = a["padding"]
    gy = a["gy"]
    divisor = pooling.avg_pool_divisor((h, w), a["kernel_size"], a["stride"], a["padding"],
                                       a["count_include_pad"], gy.dtype)
    gxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=gy.dtype)
    for ky in range(a["kernel_size"][0]):
        for kx in range(a["kernel_size"][1]):
            gxp[pooling.window_slice(ky, kx, a["stride"], gy.shape[2:])] = gy / divisor
    return gxp[:, :, ph:ph + h, pw:pw + w]


PLUS_EQUALS = "`=` where `+=` is needed: a pixel in several (overlapping) windows receives the sum of their gradients"

MAX_POOL = [
    Mistake("max_pool2d_forward", "argmax", "a tie goes to the FIRST maximum in row-major window order: compare "
            "with a strict >, not >=", lambda a: _max_pool(a, ties_to_last=True)["argmax"]),
    Mistake("max_pool2d_forward", "y", "pad with -inf, not 0: a padded pixel must never win against a real one",
            lambda a: _max_pool(a, pad_value=0)["y"]),
    Mistake("max_pool2d_forward", "argmax", "pad with -inf, not 0: a padded pixel must never win against a real "
            "one", lambda a: _max_pool(a, pad_value=0)["argmax"]),
    Mistake("max_pool2d_forward", "argmax", "argmax is the offset ky * kw + kx of the winner inside its window "
            "(row-major), not kx * kh + ky", lambda a: _max_pool(a, offset_order="column")["argmax"]),
    Mistake("max_pool2d_backward", "gx", PLUS_EQUALS, lambda a: _max_pool_backward(a, assign=True)),
    Mistake("max_pool2d_backward", "gx", "argmax k = ky * kw + kx: decode with kw (divmod(k, kw)), not kh",
            lambda a: _max_pool_backward(a, decode_with_kh=True)),
]

AVG_POOL = [
    Mistake("avg_pool2d_forward", "y", "count_include_pad: with False divide by the number of real pixels in "
            "the window, with True by kh*kw", _avg_flipped("forward")),
    Mistake("avg_pool2d_backward", "gx", "count_include_pad: the backward divides by the same divisors as the "
            "forward", _avg_flipped("backward")),
    Mistake("avg_pool2d_backward", "gx", PLUS_EQUALS, _avg_backward_assign),
    Mistake("avg_pool2d_backward", "gx", "each pixel of a window receives the window's gradient divided by the "
            "window's divisor", _avg_backward_undivided),
]


# ---------------------------------------------------------------------------------------------- batch norm
def _bn_train_variant(unbiased=False, eps_outside=False, no_relu=False):
    def compute(a):
        x, gamma, beta, eps = a["x"], a["gamma"], a["beta"], a["eps"]
        m = x.shape[0] * x.shape[2]
        mean = x.mean(axis=(0, 2), dtype=np.float64)
        var = ((x - mean.reshape(1, -1, 1)) ** 2).sum(axis=(0, 2), dtype=np.float64) / (m - 1 if unbiased else m)
        invstd = 1.0 / (var ** 0.5 + eps) if eps_outside else 1.0 / (var + eps) ** 0.5
        y = ((x - mean.reshape(1, -1, 1)) * (gamma * invstd).reshape(1, -1, 1) + beta.reshape(1, -1, 1))
        if a["relu"] and not no_relu:
            y = y.clip(min=0)
        return {"y": y.astype(x.dtype), "mean": mean, "var": var, "invstd": invstd}
    return compute


def _bn_backward_variant(terms=("mean", "var"), relu_mask=True, ggamma_on_x=False):
    def compute(a):
        gy, x, invstd, gamma, y = a["gy"], a["x"], a["invstd"], a["gamma"], a["y"]
        mean = (a["mean"] if "mean" in a else a["running_mean"]).astype(np.float64)   # train / eval
        if relu_mask and y is not None:
            gy = gy * (y > 0)
        m = x.shape[0] * x.shape[2]
        xhat = (x - mean.reshape(1, -1, 1)) * invstd.reshape(1, -1, 1)
        gbeta = gy.sum(axis=(0, 2), dtype=np.float64)
        ggamma = (gy * (x if ggamma_on_x else xhat)).sum(axis=(0, 2), dtype=np.float64)
        g = gy - (gbeta.reshape(1, -1, 1) / m if "mean" in terms else 0)
        g = g - (xhat * ggamma.reshape(1, -1, 1) / m if "var" in terms else 0)
        gx = (gamma * invstd).reshape(1, -1, 1) * g
        return {"gx": gx.astype(x.dtype), "ggamma": ggamma.astype(gamma.dtype), "gbeta": gbeta.astype(gamma.dtype)}
    return compute


def _bn_eval_with_batch_stats(a):
    return batch_norm.forward_train(a["x"], a["gamma"], a["beta"], a["eps"], a["relu"])[0]


def _bn_eval_eps_outside(a):
    invstd = 1.0 / (a["running_var"].astype(np.float64) ** 0.5 + a["eps"])
    y = (a["x"] - a["running_mean"].reshape(1, -1, 1)) * (a["gamma"] * invstd).reshape(1, -1, 1) \
        + a["beta"].reshape(1, -1, 1)
    return (y.clip(min=0) if a["relu"] else y).astype(a["x"].dtype)


def _pick(compute, output):
    return lambda a: compute(a)[output]


UNBIASED = ("biased variance: var divides by M = N*L, not M - 1 (the unbiased one is only for the running "
            "statistics)")
EPS_INSIDE_BN = "eps goes inside the square root: invstd = 1 / sqrt(var + eps)"
RELU_MASK = "forgot the ReLU mask: with y given, gy counts only where y > 0 (apply it first)"

BATCH_NORM_TRAIN = (
    [Mistake("forward_train", out, UNBIASED, _pick(_bn_train_variant(unbiased=True), out))
     for out in ("var", "y", "invstd")]
    + [Mistake("forward_train", out, EPS_INSIDE_BN, _pick(_bn_train_variant(eps_outside=True), out))
       for out in ("invstd", "y")]
    + [Mistake("forward_train", "y", "relu=True: return max(y, 0)", _pick(_bn_train_variant(no_relu=True), "y"))]
    + [Mistake("backward_train", out, RELU_MASK, _pick(_bn_backward_variant(relu_mask=False), out))
       for out in ("gx", "ggamma", "gbeta")]
    + [Mistake("backward_train", "gx", "gx misses the terms of the mean and the variance: both depend on every x "
               "of the channel, gx = gamma*invstd*(gy - gbeta/M - xhat*ggamma/M)",
               _pick(_bn_backward_variant(terms=()), "gx")),
       Mistake("backward_train", "gx", "gx misses the mean's term - gbeta/M",
               _pick(_bn_backward_variant(terms=("var",)), "gx")),
       Mistake("backward_train", "gx", "gx misses the variance's term - xhat*ggamma/M",
               _pick(_bn_backward_variant(terms=("mean",)), "gx")),
       Mistake("backward_train", "ggamma", "ggamma = sum(gy * xhat), with the normalised xhat, not x",
               _pick(_bn_backward_variant(ggamma_on_x=True), "ggamma"))]
)

BATCH_NORM_EVAL = [
    Mistake("forward_eval", "y", "evaluation mode uses running_mean and running_var, not the batch statistics",
            _bn_eval_with_batch_stats),
    Mistake("forward_eval", "y", EPS_INSIDE_BN, _bn_eval_eps_outside),
    Mistake("backward_eval", "gx", RELU_MASK, _pick(_bn_backward_variant(terms=(), relu_mask=False), "gx")),
    Mistake("backward_eval", "ggamma", RELU_MASK, _pick(_bn_backward_variant(terms=(), relu_mask=False), "ggamma")),
    Mistake("backward_eval", "gx", "in evaluation mode the statistics are constants: gx = gamma * invstd * gy, "
            "without the training mode's mean and variance terms",
            lambda a: batch_norm.backward_train(a["gy"], a["x"], a["running_mean"].astype(np.float64), a["invstd"],
                                                a["gamma"], a["y"])[0]),
]


# ---------------------------------------------------------------------------------------------- rmsprop
def _rmsprop_variant(eps_inside=None, lr_outside=False, one_minus_decay=True, weight_decay=True):
    def compute(a):
        p, g, ms, mom = (a[k].copy() for k in ("p", "g", "ms", "mom"))
        inside = a["eps_inside_sqrt"] if eps_inside is None else eps_inside
        if weight_decay and a["weight_decay"]:
            g = g + a["weight_decay"] * p
        ms = a["decay"] * ms + ((1.0 - a["decay"]) if one_minus_decay else 1.0) * g * g
        denom = (ms + a["eps"]) ** 0.5 if inside else ms ** 0.5 + a["eps"]
        if lr_outside:
            mom = a["momentum"] * mom + g / denom
            p = p - a["lr"] * mom
        else:
            mom = a["momentum"] * mom + a["lr"] * g / denom
            p = p - mom
        return {"p": p, "ms": ms, "mom": mom}
    return compute


def _rmsprop_reference(a):
    p, g, ms, mom = (a[k].copy() for k in ("p", "g", "ms", "mom"))
    rmsprop_update(p, g, ms, mom, a["lr"], a["decay"], a["eps"], a["momentum"], a["weight_decay"],
                   a["eps_inside_sqrt"])
    return {"p": p, "ms": ms, "mom": mom}


RMSPROP = (
    [Mistake("rmsprop_update", out, "eps_inside_sqrt=True is TensorFlow's form, g / sqrt(ms + eps); False is "
             "PyTorch's, g / (sqrt(ms) + eps)", _pick(_rmsprop_variant(eps_inside=False), out)) for out in ("p", "mom")]
    + [Mistake("rmsprop_update", out, "eps_inside_sqrt=False is PyTorch's form, g / (sqrt(ms) + eps)",
               _pick(_rmsprop_variant(eps_inside=True), out)) for out in ("p", "mom")]
    + [Mistake("rmsprop_update", "mom", "the learning rate sits inside the momentum buffer (TensorFlow's form): "
               "mom = momentum*mom + lr*g/denom, then p -= mom", _pick(_rmsprop_variant(lr_outside=True), "mom")),
       Mistake("rmsprop_update", "ms", "ms = decay*ms + (1 - decay)*g**2: the new square is weighted by 1 - decay",
               _pick(_rmsprop_variant(one_minus_decay=False), "ms")),
       Mistake("rmsprop_update", "ms", "weight decay first: g = g + weight_decay * p, before everything else",
               _pick(_rmsprop_variant(weight_decay=False), "ms"))]
)

#: exercise name -> its classic mistakes
MISTAKES = {
    "relu": RELU, "softmax_cross_entropy": SOFTMAX, "im2col": IM2COL, "col2im": COL2IM, "conv2d": CONV2D,
    "max_pool": MAX_POOL, "avg_pool": AVG_POOL, "batch_norm_train": BATCH_NORM_TRAIN,
    "batch_norm_eval": BATCH_NORM_EVAL, "rmsprop": RMSPROP,
}


def diagnose(exercise, function, output, got, args, dtype, mistakes=None):
    """The hint of the first classic mistake whose result equals the student's ``got``, or None.

    ``args``: the call's arguments by name (copies); ``dtype``: the inputs' dtype (the tolerance)."""
    for mistake in (MISTAKES.get(exercise, []) if mistakes is None else mistakes):
        if mistake.function != function or mistake.output != output:
            continue
        try:
            with np.errstate(all="ignore"):
                wrong = mistake.compute(dict(args))
        except Exception:           # a mistake that cannot happen on these inputs (e.g. a shape that does not fit)
            continue
        if same_values(got, np.asarray(wrong), dtype):
            return mistake.hint
    return None
