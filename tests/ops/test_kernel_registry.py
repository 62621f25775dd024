"""Kernels of your own (``ops.kernels.register``) and the contract check behind it (``ops.kernels.check``).

Every built-in implementation keeps its family's contract. A correct im2col registered as a tier of its own trains a
network (conv2d falling back to the reference conv2d, which runs the registered im2col); broken ones are refused
with a report that says what is wrong (values with the first wrong element, a shape, a dtype, a missing function,
an exception, a modified input); a partial tier falls back to the reference; built-in tiers cannot be changed."""
import importlib
import types

import numpy as np
import pytest

import ops
from autograd import Tensor
from ops import kernels
from ops.kernels.reference import im2col as reference_im2col


@pytest.fixture(autouse=True)
def clean_table():
    """Each test starts in the tier that was active and leaves no registered tier behind."""
    before = kernels.current()
    yield
    kernels.use(before)
    for tier in kernels.registered_tiers():
        if tier not in kernels.TIERS:
            kernels.unregister(tier)


def counting_im2col():
    """A copy of the reference im2col as a SimpleNamespace, counting its calls."""
    calls = {"im2col": 0, "col2im": 0}

    def im2col(x, kernel_size, stride, padding):
        calls["im2col"] += 1
        return reference_im2col.im2col(x, kernel_size, stride, padding)

    def col2im(cols, x_shape, kernel_size, stride, padding):
        calls["col2im"] += 1
        return reference_im2col.col2im(cols, x_shape, kernel_size, stride, padding)

    return types.SimpleNamespace(im2col=im2col, col2im=col2im), calls


def swapped_im2col():
    """im2col and col2im with the kernel offsets i and j swapped in the row order, consistently in both: still a
    pair of adjoint maps (so a gradient check passes), but not the contract's layout (the forward differs)."""
    def im2col(x, kernel_size, stride, padding):
        n, c, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
        oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        x_padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        cols = np.empty((c, kw, kh, n, oh, ow), dtype=x.dtype)               # rows (c, j, i): swapped
        for i in range(kh):
            for j in range(kw):
                cols[:, j, i] = x_padded[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw].transpose(1, 0, 2, 3)
        return cols.reshape(c * kh * kw, n * oh * ow)

    def col2im(cols, x_shape, kernel_size, stride, padding):
        n, c, h, w = x_shape
        (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
        oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        cols = cols.reshape(c, kw, kh, n, oh, ow)
        dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
        for i in range(kh):
            for j in range(kw):
                dxp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += cols[:, j, i].transpose(1, 0, 2, 3)
        return dxp[:, :, ph:ph + h, pw:pw + w].copy()

    return types.SimpleNamespace(im2col=im2col, col2im=col2im)


def assert_fits_100_columns(text):
    assert max(len(line) for line in text.splitlines()) <= 100, text


# ---------------------------------------------------------------------------------------------- the built-ins

@pytest.mark.parametrize("family", kernels.FAMILIES)
def test_every_reference_implementation_keeps_its_contract(family):
    report = kernels.check(family, importlib.import_module(f"ops.kernels.reference.{family}"))
    assert report.ok and report.calls > 0, str(report)


@pytest.mark.parametrize("family", ["im2col", "conv2d", "pooling", "batch_norm", "elementwise"])
def test_every_fast_cpu_implementation_keeps_its_contract(family):
    report = kernels.check(family, importlib.import_module(f"ops.kernels.cpu.{family}"))
    assert report.ok, str(report)


# ---------------------------------------------------------------------------------------------- a correct tier

def small_network(dtype):
    from minception import models, nn
    nn.init.manual_seed(0)
    return models.inception_resnet_v2(num_classes=3, width=0.0625, blocks=(1, 1, 1), small_input=True,
                                      dropout=0.0).to(dtype=dtype).train()


def one_step(dtype):
    """One RMSProp step of a small Inception-ResNet-v2 in the active tier: the loss and a conv weight after it."""
    from minception import optim
    model = small_network(dtype)
    opt = optim.RMSProp(model.named_parameters(), lr=0.01)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(dtype))
    loss = ops.softmax_cross_entropy(model(x), np.array([0, 2]))
    opt.zero_grad()
    loss.backward()
    opt.step()
    first_conv = next(p for name, p in model.named_parameters() if p.ndim == 4)
    return loss.item(), first_conv.data.copy()


def test_a_registered_im2col_trains_a_network_through_the_reference_conv2d(monkeypatch):
    mine, calls = counting_im2col()
    report = kernels.register("student", "im2col", mine)
    assert report.ok and "student" in kernels.registered_tiers()
    from ops.kernels.reference import conv2d as reference_conv2d
    conv_calls = {"forward": 0, "backward": 0}
    for name in ("forward", "backward"):
        original = getattr(reference_conv2d, name)

        def counted(*args, _name=name, _original=original):
            conv_calls[_name] += 1
            return _original(*args)
        monkeypatch.setattr(reference_conv2d, name, counted)

    with kernels.use("reference"):
        expected = one_step(np.float64)
    conv_calls.update(forward=0, backward=0)
    calls.update(im2col=0, col2im=0)
    with kernels.use("student"):
        assert kernels.current() == "student"
        assert kernels.lookup("im2col", np.zeros(1)) is mine
        assert kernels.lookup("conv2d", np.zeros(1)) is reference_conv2d      # the fallback
        got = one_step(np.float64)
    assert conv_calls["forward"] > 0 and conv_calls["backward"] > 0
    assert calls["im2col"] >= conv_calls["forward"] and calls["col2im"] > 0     # conv2d ran the student's im2col
    assert got[0] == expected[0]
    np.testing.assert_array_equal(got[1], expected[1])


def test_the_student_tier_keeps_its_im2col_for_a_backward_outside_the_block():
    mine, calls = counting_im2col()
    kernels.register("student", "im2col", mine)
    x = Tensor(np.random.default_rng(1).standard_normal((2, 3, 7, 6)), requires_grad=True)
    w = Tensor(np.random.default_rng(2).standard_normal((4, 3, 3, 3)), requires_grad=True)
    with kernels.use("student"):
        y = ops.conv2d(x, w, stride=2, padding=1)
    calls.update(im2col=0, col2im=0)
    y.backward(np.ones(y.shape))                                              # in the fast tier
    assert calls == {"im2col": 1, "col2im": 1}


def test_a_partial_tier_falls_back_to_the_reference_and_describe_says_so():
    kernels.register("student", "im2col", counting_im2col()[0])
    text = kernels.describe("student")
    lines = {line.split()[0]: line.split()[1] for line in text.splitlines()[1:]}
    assert lines == {"im2col": "student", "conv2d": "reference", "pooling": "reference", "batch_norm": "reference",
                     "elementwise": "reference", "scatter": "reference", "loss": "reference"}
    assert "a SimpleNamespace object" in text and "ops.kernels.reference.conv2d" in text
    assert_fits_100_columns(text)
    with kernels.use("student"):
        assert "'student' (active)" in kernels.describe()
        x = np.zeros((1, 1, 3, 3))
        assert kernels.lookup("pooling", x).__name__ == "ops.kernels.reference.pooling"
    fast = kernels.describe("fast")
    assert "CPU ops.kernels.cpu.conv2d, GPU ops.kernels.cuda.conv2d" in fast
    assert_fits_100_columns(fast)


def test_registering_again_replaces_the_family_and_the_cached_lookup():
    first, _ = counting_im2col()
    second, _ = counting_im2col()
    kernels.register("student", "im2col", first)
    with kernels.use("student"):
        assert kernels.lookup("im2col", np.zeros(1)) is first
        kernels.register("student", "im2col", second)
        assert kernels.lookup("im2col", np.zeros(1)) is second
    kernels.register("student", "pooling", importlib.import_module("ops.kernels.reference.pooling"))
    assert "pooling      student" in kernels.describe("student")


# ---------------------------------------------------------------------------------------------- broken ones

def test_swapped_kernel_offsets_pass_a_gradient_check_but_are_refused_with_the_first_wrong_value():
    swapped = swapped_im2col()
    rng = np.random.default_rng(3)
    x, g = rng.standard_normal((2, 3, 7, 5)), rng.standard_normal((18, 2 * 4 * 4))
    lhs = np.sum(g * swapped.im2col(x, (3, 2), (2, 1), (1, 0)))            # <g, im2col(x)> = <col2im(g), x>
    assert np.isclose(lhs, np.sum(swapped.col2im(g, x.shape, (3, 2), (2, 1), (1, 0)) * x), rtol=1e-12)
    with pytest.raises(kernels.KernelContractError) as caught:
        kernels.register("student", "im2col", swapped)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "ops.kernels.register('student', 'im2col', ...)" in message and "breaks the im2col contract" in message
    assert "im2col(x: (2, 3, 7, 5) float64, kernel_size: (3, 2), stride: (2, 1), padding: (1, 0))" in message
    assert "cols: values differ in " in message and "first at cols[1, 0]: got " in message
    assert "col2im(cols:" in message and "dx: values differ" in message
    assert_fits_100_columns(message)
    problems = caught.value.report.problems
    assert {p.kind for p in problems} == {"values"}
    assert "student" not in kernels.registered_tiers()                     # nothing registered


def test_a_transposed_layout_is_refused_for_its_shape():
    transposed = types.SimpleNamespace(
        im2col=lambda x, k, s, p: np.ascontiguousarray(reference_im2col.im2col(x, k, s, p).T),
        col2im=lambda cols, x_shape, k, s, p: reference_im2col.col2im(cols.T, x_shape, k, s, p))
    report = kernels.check("im2col", transposed)
    assert not report.ok
    text = str(report)
    assert "cols: shape (32, 18), expected (18, 32) = (C*kh*kw, N*OH*OW)" in text
    assert {p.kind for p in report.problems} >= {"shape"}
    assert_fits_100_columns(text)


def test_missing_functions_exceptions_dtypes_and_modified_inputs_are_reported():
    def im2col_float64(x, k, s, p):
        return reference_im2col.im2col(x, k, s, p).astype(np.float64)

    def col2im_that_raises(cols, x_shape, k, s, p):
        raise IndexError("index 3 is out of bounds for axis 0 with size 3")

    report = kernels.check("im2col", types.SimpleNamespace(im2col=im2col_float64, col2im=col2im_that_raises))
    text = str(report)
    assert "cols: dtype float64, expected float32" in text
    assert "raised IndexError: index 3 is out of bounds for axis 0 with size 3" in text
    assert_fits_100_columns(text)

    report = kernels.check("im2col", types.SimpleNamespace(im2col=reference_im2col.im2col))
    assert [p.message for p in report.problems] == ["missing function col2im (the im2col family needs im2col, "
                                                    "col2im)"]

    def relu_in_place(x):
        return np.maximum(x, 0, out=x)

    elementwise = importlib.import_module("ops.kernels.reference.elementwise")
    report = kernels.check("elementwise", types.SimpleNamespace(**{**vars(elementwise), "relu": relu_in_place}))
    assert [p.kind for p in report.problems] == ["modified", "modified"]        # float64 and float32
    assert "x: the call modified this argument" in str(report)

    def max_pool_forward_wrong_count(x, kernel_size, stride, padding):
        return importlib.import_module("ops.kernels.reference.pooling").max_pool2d_forward(x, kernel_size, stride,
                                                                                          padding)[0]

    pooling = importlib.import_module("ops.kernels.reference.pooling")
    report = kernels.check("pooling", types.SimpleNamespace(**{**vars(pooling),
                                                               "max_pool2d_forward": max_pool_forward_wrong_count}))
    assert "returned a ndarray, expected a tuple of 2: (y, argmax)" in str(report)


# ---------------------------------------------------------------------------------------------- names

def test_built_in_tiers_cannot_be_changed():
    for tier in ("reference", "fast"):
        with pytest.raises(ValueError, match=f"'{tier}' is a built-in tier and cannot be changed"):
            kernels.register(tier, "im2col", reference_im2col)
        with pytest.raises(ValueError, match="built-in tier"):
            kernels.unregister(tier)
    assert kernels.describe("fast").count("fast") >= 5


def test_unknown_tiers_and_families_are_clear_errors():
    kernels.register("student", "im2col", reference_im2col)
    with pytest.raises(ValueError, match=r"ops.kernels.use: unknown kernel tier 'nonexistent'; the registered tiers "
                                         r"are 'reference', 'fast', 'student' \(ops.kernels.register adds one\)"):
        kernels.use("nonexistent")
    with pytest.raises(TypeError, match="expected the name of a kernel tier, got module"):
        kernels.use(reference_im2col)
    with pytest.raises(ValueError, match="unknown kernel family 'im2cols'; expected one of 'im2col', 'conv2d'"):
        kernels.register("student", "im2cols", reference_im2col)
    with pytest.raises(ValueError, match="ops.kernels.check: unknown kernel family 'pool'"):
        kernels.check("pool", reference_im2col)
    with kernels.use("student"):
        with pytest.raises(ValueError, match="'student' is the active tier"):
            kernels.unregister("student")
    kernels.unregister("student")
    assert kernels.registered_tiers() == ("reference", "fast")


def test_the_optimizers_multi_tensor_kernels_are_imported_at_first_use_only():
    import subprocess
    import sys
    code = ("import sys, ops; from minception import optim; m = ops.kernels.multi_tensor; "
            "before = 'ops.kernels.cuda.multi_tensor' in sys.modules; chunk = m.CHUNK; "
            "print(before, 'ops.kernels.cuda.multi_tensor' in sys.modules, chunk == 256 * 16)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "True", "True"], out.stderr[-2000:]


def test_a_loss_without_the_max_shift_is_refused_for_large_logits():
    """The loss family's contract includes logits of about 1000: exp overflows there unless the row max is
    subtracted first."""
    from ops.kernels.reference import loss as reference

    def unstable_forward(logits, labels, label_smoothing):
        n, k = logits.shape
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        q = reference.smoothed_targets(labels, k, label_smoothing, logits.dtype)
        return np.asarray(-(q * log_probs).sum() / n, dtype=logits.dtype), log_probs

    unstable = types.SimpleNamespace(softmax_cross_entropy_forward=unstable_forward,
                                     softmax_cross_entropy_backward=reference.softmax_cross_entropy_backward)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        report = kernels.check("loss", unstable)
    assert not report.ok
    assert any("logits: (6, 3)" in p.call and p.kind == "values" for p in report.problems), str(report)
