"""One check per exercise: the inputs each exercise is graded on, and what is compared.

Every check draws its inputs from ``g.rng`` (seeded by the parent with a seed the student cannot know), in both
float64 and float32, on odd shapes chosen to expose the classic mistakes:

* window ops (im2col, col2im, conv2d, pooling): non-square images and kernels, strides of 2 (and 1, so windows
  overlap), padding of 1 on one axis and 0 on the other;
* max pooling: small integers too, so windows hold ties, and negative images, so that a 0 in the padding would
  win;
* softmax cross-entropy: rows shifted by 1e4 (float64) or 200 (float32), beyond where ``exp`` overflows, and
  label smoothing 0, 0.1 and 0.25;
* batch norm: with and without the fused ReLU; RMSProp: both forms of eps and weight decay.

Where the exercise has a backward, its outputs are compared with the reference's backward on the same inputs,
then checked against finite differences of the student's own forward in float64 (``Grading.gradient_check``).
"""
import numpy as np

from minception.models import Rules
from minception.models.resnet_blocks import InceptionResNetA
from minception.optim.rmsprop import rmsprop_update
from ops.kernels.reference import batch_norm, conv2d, elementwise, im2col, loss, pooling

from . import regions
from .block import check_block

DTYPES = (np.float64, np.float32)

#: (kernel_size, stride, padding) of the window cases: overlapping windows (stride < kernel), strides of 2,
#: non-square kernels, padding on one axis only
GEOMETRIES = (((3, 3), (2, 2), (1, 1)), ((3, 2), (2, 1), (1, 0)), ((2, 3), (2, 2), (0, 1)),
              ((3, 3), (1, 1), (1, 1)))


def image_shape(rng, kernel_size, low=5):
    """A small non-square ``(N, C, H, W)`` (H != W, N and C of 2 or 3) that fits the kernel."""
    n, c = int(rng.integers(2, 4)), int(rng.integers(2, 4))     # N, C >= 2: a mixed-up axis shows
    h = int(rng.integers(low, low + 4))
    w = h + int(rng.choice([-2, -1, 1, 2]))
    return n, c, max(h, kernel_size[0]), max(w, kernel_size[1])


def normal(rng, shape, dtype):
    """Standard normal values of ``shape`` in ``dtype``."""
    return rng.standard_normal(shape).astype(dtype)


def the_loss(forward, gy, pick=0):
    """``loss(x) = sum(gy * forward(x))`` (``forward`` returning a tuple: its result number ``pick``)."""
    def loss_of(x):
        y = forward(x)
        y = y[pick] if isinstance(y, tuple) else y
        return float(np.sum(gy * np.asarray(y, dtype=np.float64)))
    return loss_of


# -------------------------------------------------------------------------------------------------- 1 relu
def check_relu(g):
    for dtype in DTYPES:
        shape = (int(g.rng.integers(2, 4)), int(g.rng.integers(3, 6)), 5, 3)
        x = normal(g.rng, shape, dtype)
        x.flat[::7] = 0                                     # exact zeros: the ReLU's kink
        g.run("relu", ["x"], [x], elementwise.relu, "y", dtype)
        y = elementwise.relu(x)
        gy = normal(g.rng, shape, dtype)
        g.run("relu_backward", ["gy", "y"], [gy, y], elementwise.relu_backward, "gx", dtype,
              regions={"gx": [("where y == 0 (the ReLU was off there)", regions.relu_off(y))]})
    x = normal(g.rng, (3, 4), np.float64)
    x += np.sign(x) * 0.1                                   # away from the kink: finite differences are exact
    gy = normal(g.rng, (3, 4), np.float64)

    def gradients(m=g.module):
        return [("gx", m.relu_backward(gy, m.relu(x.copy())), the_loss(m.relu, gy), x, ())]
    g.gradient_check(("relu", "relu_backward"), "relu_backward(gy, relu(x)) for x (3, 4)", gradients)


# -------------------------------------------------------------------------------------------------- 2 softmax
def logits_case(rng, dtype, offset):
    """``(N, K)`` logits, the rows after the first shifted by ``offset`` or ``-offset``; the shifted rows' mask."""
    n, k = int(rng.integers(3, 6)), int(rng.integers(4, 9))
    z = rng.standard_normal((n, k)) * 3
    shifted = np.zeros((n, 1), dtype=bool)
    if offset:
        shifted[1:] = True
        z[1:] += offset * rng.choice([-1.0, 1.0], size=(n - 1, 1))
    return z.astype(dtype), shifted


def check_softmax_cross_entropy(g):
    forward, backward = loss.softmax_cross_entropy_forward, loss.softmax_cross_entropy_backward
    for dtype, offset, s in ((np.float64, 0.0, 0.0), (np.float64, 1e4, 0.1), (np.float32, 200.0, 0.25),
                             (np.float32, 0.0, 0.1)):
        z, shifted = logits_case(g.rng, dtype, offset)
        labels = g.rng.integers(0, z.shape[1], size=z.shape[0])
        large = [("in the rows with large logits", shifted)]
        g.run("softmax_cross_entropy_forward", ["logits", "labels", "label_smoothing"], [z, labels, s], forward,
              ("loss", "log_probs"), dtype, regions={"log_probs": large})
        _, log_probs = forward(z, labels, s)
        gloss = np.asarray(g.rng.uniform(0.5, 2.0), dtype=dtype)
        onehot = np.zeros(z.shape, dtype=bool)
        onehot[np.arange(z.shape[0]), labels] = True
        g.run("softmax_cross_entropy_backward", ["gloss", "log_probs", "labels", "label_smoothing"],
              [gloss, log_probs, labels, s], backward, "dlogits", dtype,
              regions={"dlogits": [("in the labels' columns", onehot), ("in the other columns", ~onehot)]})
    z, _ = logits_case(g.rng, np.float64, 0.0)
    labels = g.rng.integers(0, z.shape[1], size=z.shape[0])

    def gradients(m=g.module):
        _, log_probs = m.softmax_cross_entropy_forward(z.copy(), labels, 0.1)
        dlogits = m.softmax_cross_entropy_backward(np.asarray(1.5), log_probs, labels, 0.1)
        return [("dlogits", dlogits, the_loss(lambda v: m.softmax_cross_entropy_forward(v, labels, 0.1), 1.5),
                 z, ())]
    g.gradient_check(("softmax_cross_entropy_forward", "softmax_cross_entropy_backward"),
                     f"dlogits for logits {z.shape}, label_smoothing=0.1", gradients)


# -------------------------------------------------------------------------------------------------- 3, 4 im2col
def check_im2col(g):
    for number, (kernel_size, stride, padding) in enumerate(GEOMETRIES):
        dtype = DTYPES[number % 2]
        x = normal(g.rng, image_shape(g.rng, kernel_size), dtype)
        g.run("im2col", ["x", "kernel_size", "stride", "padding"], [x, kernel_size, stride, padding], im2col.im2col,
              "cols", dtype, shape_rules={"cols": "(C*kh*kw, N*OH*OW)"},
              regions={"cols": [("in the entries copied from the padding",
                                 regions.padding_entries(x.shape, kernel_size, stride, padding)),
                                ("in the entries copied from the image",
                                 ~regions.padding_entries(x.shape, kernel_size, stride, padding))]})


def check_col2im(g):
    for number, (kernel_size, stride, padding) in enumerate(GEOMETRIES):
        dtype = DTYPES[number % 2]
        x_shape = image_shape(g.rng, kernel_size)
        rows = x_shape[1] * kernel_size[0] * kernel_size[1]
        oh, ow = pooling.out_size(x_shape[2:], kernel_size, stride, padding)
        cols = normal(g.rng, (rows, x_shape[0] * oh * ow), dtype)
        g.run("col2im", ["cols", "x_shape", "kernel_size", "stride", "padding"],
              [cols, x_shape, kernel_size, stride, padding], im2col.col2im, "dx", dtype,
              shape_rules={"dx": "x_shape (N, C, H, W)"},
              regions={"dx": [("where windows overlap (pixels in several windows)",
                               regions.overlapping_pixels(x_shape, kernel_size, stride, padding)),
                              ("in the pixels next to the padding",
                               regions.border_pixels(x_shape, kernel_size, stride, padding))]})
    # col2im is the backward of im2col: checked against finite differences of the student's im2col, if written
    geometry = ((3, 2), (2, 1), (1, 1))
    x = normal(g.rng, (1, 2, 5, 4), np.float64)

    def gradients(m=g.module):
        c = normal(g.rng, m.im2col(x.copy(), *geometry).shape, np.float64)
        dx = m.col2im(c, x.shape, *geometry)
        return [("dx", dx, the_loss(lambda v: m.im2col(v, *geometry), c), x, ())]
    g.gradient_check(("im2col", "col2im"), "col2im as the backward of your im2col: x (1, 2, 5, 4), kernel (3, 2), "
                     "stride (2, 1), padding (1, 1)", gradients)


# -------------------------------------------------------------------------------------------------- 5 conv2d
def check_conv2d(g):
    needs = ((True, True), (True, False), (False, True), (True, True))
    for number, (kernel_size, stride, padding) in enumerate(GEOMETRIES):
        dtype = DTYPES[number % 2]
        x = normal(g.rng, image_shape(g.rng, kernel_size), dtype)
        cout = int(g.rng.integers(2, 5))
        weight = normal(g.rng, (cout, x.shape[1]) + kernel_size, dtype)
        bias = None if number == 2 else normal(g.rng, (cout,), dtype)
        names = ["x", "weight", "bias", "stride", "padding"]
        g.run("forward", names, [x, weight, bias, stride, padding], conv2d.forward, "y", dtype,
              shape_rules={"y": "(N, Cout, OH, OW)"},
              regions={"y": [("at the outputs whose window reaches into the padding",
                              regions.windows_in_padding((x.shape[0], cout) + x.shape[2:], kernel_size, stride,
                                                         padding))]})
        oh, ow = pooling.out_size(x.shape[2:], kernel_size, stride, padding)
        gy = normal(g.rng, (x.shape[0], cout + 1, oh, ow), dtype)[:, 1:]   # any strides: a slice, as from a concat
        need_x, need_w = needs[number]
        g.run("backward", ["x", "weight", "gy", "stride", "padding", "need_x", "need_w"],
              [x, weight, gy, stride, padding, need_x, need_w], conv2d.backward, ("dx", "dweight"), dtype,
              shape_rules={"dx": "x's shape (N, C, H, W)", "dweight": "weight's shape (Cout, C, kh, kw)"},
              regions={"dx": [("where windows overlap (pixels in several windows)",
                               regions.overlapping_pixels(x.shape, kernel_size, stride, padding))]})
    geometry = ((2, 1), (1, 1))                                  # stride, padding
    x, weight = normal(g.rng, (1, 2, 5, 4), np.float64), normal(g.rng, (2, 2, 3, 2), np.float64)
    bias = normal(g.rng, (2,), np.float64)
    gy = normal(g.rng, (1, 2) + pooling.out_size(x.shape[2:], (3, 2), *geometry), np.float64)

    def gradients(m=g.module):
        dx, dweight = m.backward(x.copy(), weight.copy(), gy, *geometry, True, True)
        return [("dx", dx, the_loss(lambda v: m.forward(v, weight.copy(), bias, *geometry), gy), x, ()),
                ("dweight", dweight, the_loss(lambda v: m.forward(x.copy(), v, bias, *geometry), gy), weight, ())]
    g.gradient_check(("forward", "backward"), "dx and dweight: x (1, 2, 5, 4), weight (2, 2, 3, 2), stride (2, 1), "
                     "padding (1, 1)", gradients)


# -------------------------------------------------------------------------------------------------- 6, 7 pooling
POOL_GEOMETRIES = (((3, 3), (2, 2), (1, 1)), ((3, 2), (2, 1), (1, 1)), ((2, 3), (2, 2), (0, 1)),
                   ((3, 3), (1, 1), (1, 0)))


def pooling_input(rng, kind, shape, dtype):
    """``"normal"`` values, ``"ties"`` (small integers: windows with equal maxima) or ``"negative"`` (all < 0)."""
    if kind == "ties":
        return rng.integers(-2, 3, size=shape).astype(dtype)
    x = normal(rng, shape, dtype)
    return -np.abs(x) - 0.5 if kind == "negative" else x


def distinct_values(rng, shape):
    """float64 values at least 0.05 apart, shuffled: no ties, so max pooling is smooth at every one."""
    return rng.permutation(np.arange(int(np.prod(shape))) * 0.05 - 1.0).reshape(shape)


def check_max_pool(g):
    kinds = ("ties", "normal", "negative", "ties")
    for number, (kernel_size, stride, padding) in enumerate(POOL_GEOMETRIES):
        dtype = DTYPES[number % 2]
        x = pooling_input(g.rng, kinds[number], image_shape(g.rng, kernel_size), dtype)
        geometry = [kernel_size, stride, padding]
        y_regions = [("at windows with a tie for the maximum", regions.tie_windows(x, *geometry)),
                     ("at windows that reach into the padding", regions.windows_in_padding(x.shape, *geometry))]
        g.run("max_pool2d_forward", ["x", "kernel_size", "stride", "padding"], [x] + geometry,
              pooling.max_pool2d_forward, ("y", "argmax"), dtype,
              shape_rules={"y": "(N, C, OH, OW)", "argmax": "(N, C, OH, OW)"},
              regions={"y": y_regions, "argmax": y_regions})
        _, argmax = pooling.max_pool2d_forward(x, *geometry)
        gy = normal(g.rng, argmax.shape, dtype)
        g.run("max_pool2d_backward", ["gy", "argmax", "x_shape", "kernel_size", "stride", "padding"],
              [gy, argmax, x.shape] + geometry, pooling.max_pool2d_backward, "gx", dtype,
              shape_rules={"gx": "x_shape (N, C, H, W)"},
              regions={"gx": [("where windows overlap (pixels in several windows)",
                               regions.overlapping_pixels(x.shape, *geometry))]})
    geometry = [(3, 2), (2, 1), (1, 1)]
    x = distinct_values(g.rng, (1, 2, 5, 4))

    def gradients(m=g.module):
        y, argmax = m.max_pool2d_forward(x.copy(), *geometry)
        gy = normal(g.rng, np.shape(y), np.float64)
        gx = m.max_pool2d_backward(gy, argmax, x.shape, *geometry)
        return [("gx", gx, the_loss(lambda v: m.max_pool2d_forward(v, *geometry), gy), x, ())]
    g.gradient_check(("max_pool2d_forward", "max_pool2d_backward"), "gx for x (1, 2, 5, 4) without ties, kernel "
                     "(3, 2), stride (2, 1), padding (1, 1)", gradients)


def check_avg_pool(g):
    for number, (kernel_size, stride, padding) in enumerate(POOL_GEOMETRIES):
        dtype = DTYPES[number % 2]
        include = number % 2 == 1
        x = normal(g.rng, image_shape(g.rng, kernel_size), dtype)
        geometry = [kernel_size, stride, padding]
        g.run("avg_pool2d_forward", ["x", "kernel_size", "stride", "padding", "count_include_pad"],
              [x] + geometry + [include], pooling.avg_pool2d_forward, "y", dtype,
              shape_rules={"y": "(N, C, OH, OW)"},
              regions={"y": [("at windows that reach into the padding",
                              regions.windows_in_padding(x.shape, *geometry))]})
        oh, ow = pooling.out_size(x.shape[2:], *geometry)
        gy = normal(g.rng, x.shape[:2] + (oh, ow), dtype)
        g.run("avg_pool2d_backward", ["gy", "x_shape", "kernel_size", "stride", "padding", "count_include_pad"],
              [gy, x.shape] + geometry + [include], pooling.avg_pool2d_backward, "gx", dtype,
              shape_rules={"gx": "x_shape (N, C, H, W)"},
              regions={"gx": [("in the pixels of windows that reach into the padding",
                               regions.border_pixels(x.shape, *geometry)),
                              ("where windows overlap (pixels in several windows)",
                               regions.overlapping_pixels(x.shape, *geometry))]})
    geometry = [(3, 2), (2, 1), (1, 1)]
    x = normal(g.rng, (1, 2, 5, 4), np.float64)
    gy = normal(g.rng, (1, 2) + pooling.out_size(x.shape[2:], *geometry), np.float64)

    def gradients(m=g.module):
        gx = m.avg_pool2d_backward(gy, x.shape, *geometry, False)
        return [("gx", gx, the_loss(lambda v: m.avg_pool2d_forward(v, *geometry, False), gy), x, ())]
    g.gradient_check(("avg_pool2d_forward", "avg_pool2d_backward"), "gx for x (1, 2, 5, 4), kernel (3, 2), "
                     "stride (2, 1), padding (1, 1), count_include_pad=False", gradients)


# -------------------------------------------------------------------------------------------------- 8, 9 batch norm
def bn_case(rng, dtype):
    """x ``(N, C, L)`` off-centre and spread, gamma, beta ``(C,)``."""
    n, c, length = int(rng.integers(2, 4)), int(rng.integers(2, 5)), int(rng.integers(3, 10))
    x = (rng.standard_normal((n, c, length)) * rng.uniform(0.5, 3.0, size=(1, c, 1)) + rng.uniform(-2, 2, (1, c, 1)))
    return x.astype(dtype), rng.uniform(0.5, 1.5, c).astype(dtype), rng.standard_normal(c).astype(dtype)


def check_batch_norm_train(g):
    for dtype, relu, eps in ((np.float64, False, 1e-5), (np.float32, True, 1e-3), (np.float64, True, 1e-3),
                             (np.float32, False, 1e-5)):
        x, gamma, beta = bn_case(g.rng, dtype)
        g.run("forward_train", ["x", "gamma", "beta", "eps", "relu"], [x, gamma, beta, eps, relu],
              batch_norm.forward_train, ("y", "mean", "var", "invstd"), dtype)
        y, mean, _, invstd = batch_norm.forward_train(x, gamma, beta, eps, relu)
        gy = normal(g.rng, x.shape, dtype)
        cut = [("where y == 0 (the ReLU cut)", regions.relu_off(y))] if relu else []
        g.run("backward_train", ["gy", "x", "mean", "invstd", "gamma", "y"],
              [gy, x, mean, invstd, gamma, y if relu else None], batch_norm.backward_train,
              ("gx", "ggamma", "gbeta"), dtype, regions={"gx": cut})
    x, gamma, beta = bn_case(g.rng, np.float64)
    gy = normal(g.rng, x.shape, np.float64)

    def gradients(m=g.module):
        y, mean, _, invstd = m.forward_train(x.copy(), gamma.copy(), beta.copy(), 1e-3, True)
        gx, ggamma, gbeta = m.backward_train(gy, x.copy(), mean, invstd, gamma.copy(), y)
        return [("gx", gx, the_loss(lambda v: m.forward_train(v, gamma, beta, 1e-3, True), gy), x, ()),
                ("ggamma", ggamma, the_loss(lambda v: m.forward_train(x, v, beta, 1e-3, True), gy), gamma, ()),
                ("gbeta", gbeta, the_loss(lambda v: m.forward_train(x, gamma, v, 1e-3, True), gy), beta, ())]
    g.gradient_check(("forward_train", "backward_train"), f"gx, ggamma, gbeta for x {x.shape}, relu=True",
                     gradients)


def check_batch_norm_eval(g):
    for dtype, relu, eps in ((np.float64, False, 1e-5), (np.float32, True, 1e-3), (np.float64, True, 1e-3)):
        x, gamma, beta = bn_case(g.rng, dtype)
        running_mean = g.rng.standard_normal(x.shape[1]).astype(dtype)
        running_var = g.rng.uniform(0.5, 4.0, x.shape[1]).astype(dtype)
        g.run("forward_eval", ["x", "gamma", "beta", "running_mean", "running_var", "eps", "relu"],
              [x, gamma, beta, running_mean, running_var, eps, relu], batch_norm.forward_eval, ("y", "invstd"), dtype)
        y, invstd = batch_norm.forward_eval(x, gamma, beta, running_mean, running_var, eps, relu)
        gy = normal(g.rng, x.shape, dtype)
        cut = [("where y == 0 (the ReLU cut)", regions.relu_off(y))] if relu else []
        g.run("backward_eval", ["gy", "x", "running_mean", "invstd", "gamma", "y"],
              [gy, x, running_mean, invstd, gamma, y if relu else None], batch_norm.backward_eval,
              ("gx", "ggamma", "gbeta"), dtype, regions={"gx": cut})
    x, gamma, beta = bn_case(g.rng, np.float64)
    stats = (g.rng.standard_normal(x.shape[1]), g.rng.uniform(0.5, 4.0, x.shape[1]), 1e-3, True)
    gy = normal(g.rng, x.shape, np.float64)

    def gradients(m=g.module):
        y, invstd = m.forward_eval(x.copy(), gamma.copy(), beta.copy(), *stats)
        gx, ggamma, gbeta = m.backward_eval(gy, x.copy(), stats[0].copy(), invstd, gamma.copy(), y)
        return [("gx", gx, the_loss(lambda v: m.forward_eval(v, gamma, beta, *stats), gy), x, ()),
                ("ggamma", ggamma, the_loss(lambda v: m.forward_eval(x, v, beta, *stats), gy), gamma, ()),
                ("gbeta", gbeta, the_loss(lambda v: m.forward_eval(x, gamma, v, *stats), gy), beta, ())]
    g.gradient_check(("forward_eval", "backward_eval"), f"gx, ggamma, gbeta for x {x.shape}, relu=True", gradients)


# -------------------------------------------------------------------------------------------------- 10 rmsprop
#: (lr, decay, eps, momentum, weight_decay, eps_inside_sqrt): the paper's, PyTorch's form, and a large lr and eps
#: (so that where eps sits shows in float32 too)
RMSPROP_SETTINGS = ((0.045, 0.9, 1.0, 0.9, 0.0, True), (0.05, 0.95, 0.1, 0.5, 0.01, False),
                    (0.1, 0.9, 0.1, 0.9, 4e-5, True))


def check_rmsprop(g):
    names = ["p", "g", "ms", "mom", "lr", "decay", "eps", "momentum", "weight_decay", "eps_inside_sqrt"]
    for number, settings in enumerate(RMSPROP_SETTINGS):
        dtype = DTYPES[number % 2]
        shape = (int(g.rng.integers(2, 5)), int(g.rng.integers(3, 7)))
        p, grad = normal(g.rng, shape, dtype), normal(g.rng, shape, dtype) * 3
        ms, mom = g.rng.uniform(0.0, 2.0, shape).astype(dtype), normal(g.rng, shape, dtype) * 0.1
        g.run("rmsprop_update", names, [p, grad, ms, mom, *settings], rmsprop_update, ("p", "ms", "mom"), dtype,
              inplace=("p", "ms", "mom"))


# -------------------------------------------------------------------------------------------------- 11 the block
def check_inception_resnet_a(g):
    check_block(g, InceptionResNetA, Rules)


#: exercise name -> its check
CHECKS = {
    "relu": check_relu, "softmax_cross_entropy": check_softmax_cross_entropy, "im2col": check_im2col,
    "col2im": check_col2im, "conv2d": check_conv2d, "max_pool": check_max_pool, "avg_pool": check_avg_pool,
    "batch_norm_train": check_batch_norm_train, "batch_norm_eval": check_batch_norm_eval, "rmsprop": check_rmsprop,
    "inception_resnet_a": check_inception_resnet_a,
}
