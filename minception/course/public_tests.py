'''The public tests a student runs on their copy (``pytest DIR``): the text of ``DIR/tests/``, file by file.

Small and fixed: each test compares the student's function with the library's reference on one or two fixed
inputs (shape, dtype, values) and, where the exercise has a backward, checks it against central differences of
the student's own forward in float64. They fail on a fresh copy (every function raises NotImplementedError) and
pass on the solutions. The grader (``python -m minception.course check``) goes further: random odd shapes, a seed
the student cannot know, and a diagnosis of the mistake.

``TESTS``: file name -> text; ``conftest.py`` finds the student's ``exercises/`` next to ``tests/``.
'''

CONFTEST = '''"""What the tests of this folder share: your exercise files, and a numerical gradient.

`pytest DIR` (or `pytest DIR/tests/test_im2col.py`) runs them; each test imports your file afresh, so an edit
is seen at the next run.
"""
import os

import numpy as np
import pytest

from autograd.gradcheck import numerical_gradient
from minception.course.exercises import load_student_module

EXERCISES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "exercises")


@pytest.fixture
def student():
    """``student("im2col.py")``: your file from ../exercises, imported afresh."""
    return lambda file: load_student_module(EXERCISES, file)


def numeric_gradient(f, x, gy, eps=1e-6):
    """dL/dx of ``L = sum(f(x) * gy)`` by central differences, element by element (x: float64, changed and put
    back; ``autograd.gradcheck.numerical_gradient``): the gradient your backward must return when its upstream
    gradient is ``gy``."""
    return numerical_gradient(lambda: float(np.sum(f(x) * gy)), x, eps)


@pytest.fixture
def gradient():
    """``gradient(f, x, gy)``: ``numeric_gradient`` above."""
    return numeric_gradient


def assert_close(got, expected, name, rtol=1e-6, atol=1e-8):
    """``got`` has ``expected``'s shape and dtype and its values (a message naming ``name`` otherwise)."""
    assert np.shape(got) == np.shape(expected), f"{name}: shape {np.shape(got)}, expected {np.shape(expected)}"
    assert np.asarray(got).dtype == np.asarray(expected).dtype, \\
        f"{name}: dtype {np.asarray(got).dtype}, expected {np.asarray(expected).dtype}"
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=name)


@pytest.fixture
def close():
    """``close(got, expected, name)``: ``assert_close`` above."""
    return assert_close
'''

RELU = '''"""Exercise 1, relu (exercises/relu.py): relu and relu_backward."""
import numpy as np

from ops.kernels.reference import elementwise as reference


def test_relu_matches_the_reference(student, close):
    mine = student("relu.py")
    x = np.random.default_rng(11).standard_normal((3, 4, 5)).astype(np.float32)
    close(mine.relu(x), reference.relu(x), "relu(x)")


def test_relu_backward_is_the_gradient_of_relu(student, gradient, close):
    mine = student("relu.py")
    rng = np.random.default_rng(12)
    x, gy = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    close(mine.relu_backward(gy, mine.relu(x)), gradient(mine.relu, x, gy), "relu_backward(gy, y)")
'''

LOSS = '''"""Exercise 2, softmax_cross_entropy (exercises/loss.py): the forward and the backward."""
import numpy as np

from ops.kernels.reference import loss as reference


def test_forward_matches_the_reference(student, close):
    mine = student("loss.py")
    rng = np.random.default_rng(21)
    logits, labels = rng.standard_normal((5, 7)), rng.integers(0, 7, 5)
    for smoothing in (0.0, 0.1):
        loss, log_probs = mine.softmax_cross_entropy_forward(logits, labels, smoothing)
        expected_loss, expected_log_probs = reference.softmax_cross_entropy_forward(logits, labels, smoothing)
        close(loss, expected_loss, f"loss (label_smoothing={smoothing})")
        close(log_probs, expected_log_probs, f"log_probs (label_smoothing={smoothing})")


def test_forward_is_stable_for_large_logits(student, close):
    mine = student("loss.py")
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 999.0]], dtype=np.float32)
    labels = np.array([0, 2])
    loss, _ = mine.softmax_cross_entropy_forward(logits, labels, 0.0)
    assert np.isfinite(loss), "a NaN or inf loss: subtract each row's maximum before exp"
    close(loss, reference.softmax_cross_entropy_forward(logits, labels, 0.0)[0], "loss", rtol=1e-5)


def test_backward_is_the_gradient_of_the_forward(student, gradient, close):
    mine = student("loss.py")
    rng = np.random.default_rng(22)
    logits, labels, gloss = rng.standard_normal((4, 5)), rng.integers(0, 5, 4), np.asarray(1.7)
    _, log_probs = mine.softmax_cross_entropy_forward(logits, labels, 0.1)
    got = mine.softmax_cross_entropy_backward(gloss, log_probs, labels, 0.1)
    expected = gradient(lambda z: mine.softmax_cross_entropy_forward(z, labels, 0.1)[0], logits, gloss)
    close(got, expected, "dlogits", rtol=1e-5)
'''

IM2COL = '''"""Exercise 3, im2col (exercises/im2col.py)."""
import numpy as np

from ops.kernels.reference import im2col as reference

#: (x shape, kernel_size, stride, padding)
CASES = [((2, 3, 5, 4), (3, 2), (1, 1), (0, 0)), ((2, 2, 7, 5), (3, 3), (2, 1), (1, 1))]


def test_im2col_matches_the_reference(student, close):
    mine = student("im2col.py")
    rng = np.random.default_rng(31)
    for shape, k, s, p in CASES:
        x = rng.standard_normal(shape)
        close(mine.im2col(x, k, s, p), reference.im2col(x, k, s, p),
              f"im2col(x {shape}, kernel_size={k}, stride={s}, padding={p})")
'''

COL2IM = '''"""Exercise 4, col2im (exercises/im2col.py)."""
import numpy as np

from ops.kernels.reference import im2col as reference

CASES = [((2, 3, 5, 4), (3, 2), (1, 1), (0, 0)), ((2, 2, 7, 5), (3, 3), (2, 1), (1, 1))]


def test_col2im_matches_the_reference(student, close):
    mine = student("im2col.py")
    rng = np.random.default_rng(41)
    for shape, k, s, p in CASES:
        cols = rng.standard_normal(reference.im2col(np.zeros(shape), k, s, p).shape)
        close(mine.col2im(cols, shape, k, s, p), reference.col2im(cols, shape, k, s, p),
              f"col2im(cols, {shape}, kernel_size={k}, stride={s}, padding={p})")


def test_col2im_is_the_adjoint_of_im2col(student):
    """sum(im2col(x) * cols) == sum(x * col2im(cols)) for every x and cols: col2im is im2col transposed."""
    mine = student("im2col.py")
    rng = np.random.default_rng(42)
    shape, k, s, p = CASES[1]
    x = rng.standard_normal(shape)
    cols = rng.standard_normal(reference.im2col(x, k, s, p).shape)
    left, right = np.sum(reference.im2col(x, k, s, p) * cols), np.sum(x * mine.col2im(cols, shape, k, s, p))
    assert np.isclose(left, right), f"<im2col(x), cols> = {left}, but <x, col2im(cols)> = {right}"
'''

CONV2D = '''"""Exercise 5, conv2d (exercises/conv2d.py): forward and backward, through the active tier's im2col."""
import numpy as np

from ops.kernels.reference import conv2d as reference

STRIDE, PADDING = (2, 1), (1, 0)


def sample():
    rng = np.random.default_rng(51)
    return rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2, 3, 2)), rng.standard_normal(3)


def test_forward_matches_the_reference(student, close):
    mine = student("conv2d.py")
    x, w, b = sample()
    for bias in (b, None):
        close(mine.forward(x, w, bias, STRIDE, PADDING), reference.forward(x, w, bias, STRIDE, PADDING),
              f"forward(x, weight, bias={'given' if bias is not None else None})")


def test_backward_is_the_gradient_of_the_forward(student, gradient, close):
    mine = student("conv2d.py")
    x, w, _ = sample()
    gy = np.random.default_rng(52).standard_normal(reference.forward(x, w, None, STRIDE, PADDING).shape)
    dx, dw = mine.backward(x, w, gy, STRIDE, PADDING, True, True)
    close(dx, gradient(lambda v: mine.forward(v, w, None, STRIDE, PADDING), x, gy), "dx")
    close(dw, gradient(lambda v: mine.forward(x, v, None, STRIDE, PADDING), w, gy), "dweight")
    assert mine.backward(x, w, gy, STRIDE, PADDING, False, True)[0] is None, "dx must be None when not needed"
'''

MAX_POOL = '''"""Exercise 6, max_pool (exercises/pooling.py): max_pool2d_forward and max_pool2d_backward."""
import numpy as np

from ops.kernels.reference import pooling as reference

WINDOW = dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1))


def distinct(shape, seed):
    """Values without ties (a tie has no derivative), shuffled."""
    size = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(size).reshape(shape) / size - 0.5


def test_forward_matches_the_reference(student, close):
    mine = student("pooling.py")
    x = distinct((2, 3, 7, 6), 61)
    y, argmax = mine.max_pool2d_forward(x, **WINDOW)
    expected_y, expected_argmax = reference.max_pool2d_forward(x, **WINDOW)
    close(y, expected_y, "y")
    close(argmax, expected_argmax, "argmax")


def test_a_tie_goes_to_the_first_maximum(student):
    mine = student("pooling.py")
    _, argmax = mine.max_pool2d_forward(np.ones((1, 1, 4, 4)), (2, 2), (2, 2), (0, 0))
    assert np.all(argmax == 0), f"argmax {argmax.ravel()}: with equal values the first offset (0) wins"


def test_backward_is_the_gradient_of_the_forward(student, gradient, close):
    mine = student("pooling.py")
    x = distinct((2, 2, 6, 5), 62)
    y, argmax = mine.max_pool2d_forward(x, **WINDOW)
    gy = np.random.default_rng(63).standard_normal(y.shape)
    expected = gradient(lambda v: mine.max_pool2d_forward(v, **WINDOW)[0], x, gy)
    close(mine.max_pool2d_backward(gy, argmax, x.shape, **WINDOW), expected, "gx")
'''

AVG_POOL = '''"""Exercise 7, avg_pool (exercises/pooling.py): avg_pool2d_forward and avg_pool2d_backward."""
import numpy as np

from ops.kernels.reference import pooling as reference

WINDOW = dict(kernel_size=(3, 3), stride=(2, 1), padding=(1, 1))


def test_forward_matches_the_reference(student, close):
    mine = student("pooling.py")
    x = np.random.default_rng(71).standard_normal((2, 3, 7, 6))
    for include in (False, True):
        close(mine.avg_pool2d_forward(x, **WINDOW, count_include_pad=include),
              reference.avg_pool2d_forward(x, **WINDOW, count_include_pad=include), f"y (count_include_pad={include})")


def test_backward_is_the_gradient_of_the_forward(student, gradient, close):
    mine = student("pooling.py")
    rng = np.random.default_rng(72)
    x = rng.standard_normal((2, 2, 6, 5))
    for include in (False, True):
        y = mine.avg_pool2d_forward(x, **WINDOW, count_include_pad=include)
        gy = rng.standard_normal(y.shape)
        expected = gradient(lambda v: mine.avg_pool2d_forward(v, **WINDOW, count_include_pad=include), x, gy)
        close(mine.avg_pool2d_backward(gy, x.shape, **WINDOW, count_include_pad=include), expected,
              f"gx (count_include_pad={include})")
'''

BATCH_NORM_TRAIN = '''"""Exercise 8, batch_norm_train (exercises/batch_norm.py): forward_train and backward_train."""
import numpy as np

from ops.kernels.reference import batch_norm as reference

EPS = 1e-3


def sample():
    rng = np.random.default_rng(81)
    x = rng.standard_normal((4, 3, 5)) * 2.0 + 1.0
    return x, rng.uniform(0.5, 1.5, 3), rng.standard_normal(3), rng.standard_normal((4, 3, 5))


def test_forward_matches_the_reference(student, close):
    mine = student("batch_norm.py")
    x, gamma, beta, _ = sample()
    for relu in (False, True):
        got = mine.forward_train(x, gamma, beta, EPS, relu=relu)
        expected = reference.forward_train(x, gamma, beta, EPS, relu=relu)
        for name, g, e in zip(("y", "mean", "var", "invstd"), got, expected):
            close(g, e, f"{name} (relu={relu})")


def test_backward_is_the_gradient_of_the_forward(student, gradient, close):
    mine = student("batch_norm.py")
    x, gamma, beta, gy = sample()
    _, mean, _, invstd = mine.forward_train(x, gamma, beta, EPS)
    gx, ggamma, gbeta = mine.backward_train(gy, x, mean, invstd, gamma)
    close(gx, gradient(lambda v: mine.forward_train(v, gamma, beta, EPS)[0], x, gy), "gx", rtol=1e-5)
    close(ggamma, gradient(lambda v: mine.forward_train(x, v, beta, EPS)[0], gamma, gy), "ggamma", rtol=1e-5)
    close(gbeta, gradient(lambda v: mine.forward_train(x, gamma, v, EPS)[0], beta, gy), "gbeta", rtol=1e-5)
'''

BATCH_NORM_EVAL = '''"""Exercise 9, batch_norm_eval (exercises/batch_norm.py): forward_eval and backward_eval."""
import numpy as np

from ops.kernels.reference import batch_norm as reference

EPS = 1e-3


def sample():
    rng = np.random.default_rng(91)
    x = rng.standard_normal((4, 3, 5))
    gamma, beta = rng.uniform(0.5, 1.5, 3), rng.standard_normal(3)
    return x, gamma, beta, rng.standard_normal(3), rng.uniform(0.5, 2.0, 3), rng.standard_normal((4, 3, 5))


def test_forward_matches_the_reference(student, close):
    mine = student("batch_norm.py")
    x, gamma, beta, rm, rv, _ = sample()
    for relu in (False, True):
        got = mine.forward_eval(x, gamma, beta, rm, rv, EPS, relu=relu)
        expected = reference.forward_eval(x, gamma, beta, rm, rv, EPS, relu=relu)
        for name, g, e in zip(("y", "invstd"), got, expected):
            close(g, e, f"{name} (relu={relu})")


def test_backward_is_the_gradient_of_the_forward(student, gradient, close):
    mine = student("batch_norm.py")
    x, gamma, beta, rm, rv, gy = sample()
    _, invstd = mine.forward_eval(x, gamma, beta, rm, rv, EPS)
    gx, ggamma, gbeta = mine.backward_eval(gy, x, rm, invstd, gamma)
    close(gx, gradient(lambda v: mine.forward_eval(v, gamma, beta, rm, rv, EPS)[0], x, gy), "gx")
    close(ggamma, gradient(lambda v: mine.forward_eval(x, v, beta, rm, rv, EPS)[0], gamma, gy), "ggamma")
    close(gbeta, gradient(lambda v: mine.forward_eval(x, gamma, v, rm, rv, EPS)[0], beta, gy), "gbeta")
'''

RMSPROP = '''"""Exercise 10, rmsprop (exercises/rmsprop.py): rmsprop_update, three steps against the library's."""
import numpy as np

from minception.optim.rmsprop import rmsprop_update as reference


def test_three_steps_match_the_library(student, close):
    mine = student("rmsprop.py")
    rng = np.random.default_rng(101)
    for eps_inside_sqrt, weight_decay in ((True, 0.0), (True, 4e-5), (False, 0.0)):
        p = rng.standard_normal(7)
        ms, mom = np.ones(7), np.zeros(7)
        p2, ms2, mom2 = p.copy(), ms.copy(), mom.copy()
        for _ in range(3):
            g = rng.standard_normal(7)
            g_before = g.copy()
            mine.rmsprop_update(p, g, ms, mom, 0.02, 0.9, 1.0, 0.9, weight_decay, eps_inside_sqrt)
            reference(p2, g.copy(), ms2, mom2, 0.02, 0.9, 1.0, 0.9, weight_decay, eps_inside_sqrt)
            assert np.array_equal(g, g_before), "rmsprop_update changed the gradient g"
        what = f"(eps_inside_sqrt={eps_inside_sqrt}, weight_decay={weight_decay})"
        close(ms, ms2, f"ms {what}")
        close(mom, mom2, f"mom {what}")
        close(p, p2, f"p {what}")
'''

INCEPTION_RESNET_A = '''"""Exercise 11, inception_resnet_a (exercises/inception_resnet_a.py): the block, built from nn units."""
import numpy as np

from autograd import Tensor
from minception import models, nn
from minception.models.rules import Rules


def build(block_class):
    nn.init.manual_seed(0)          # the same seed and the same order of layers give the same weights
    return block_class(40, Rules(width=0.25), version=2, scale=0.17)


def test_the_block_has_the_figures_layers(student):
    mine, library = build(student("inception_resnet_a.py").InceptionResNetA), build(models.InceptionResNetA)
    got = [(name, p.shape) for name, p in mine.named_parameters()]
    expected = [(name, p.shape) for name, p in library.named_parameters()]
    assert got == expected, f"parameters (name, shape):\\n  yours    {got}\\n  expected {expected}"


def test_the_block_computes_the_figure(student, close):
    mine, library = build(student("inception_resnet_a.py").InceptionResNetA), build(models.InceptionResNetA)
    x = Tensor(np.random.default_rng(111).standard_normal((2, 40, 5, 5)).astype(np.float32))
    close(mine(x).data, library(x).data, "the block's output", rtol=1e-5, atol=1e-6)
'''

#: file name in DIR/tests -> text
TESTS = {
    "conftest.py": CONFTEST,
    "test_relu.py": RELU,
    "test_softmax_cross_entropy.py": LOSS,
    "test_im2col.py": IM2COL,
    "test_col2im.py": COL2IM,
    "test_conv2d.py": CONV2D,
    "test_max_pool.py": MAX_POOL,
    "test_avg_pool.py": AVG_POOL,
    "test_batch_norm_train.py": BATCH_NORM_TRAIN,
    "test_batch_norm_eval.py": BATCH_NORM_EVAL,
    "test_rmsprop.py": RMSPROP,
    "test_inception_resnet_a.py": INCEPTION_RESNET_A,
}
