"""Anomaly mode: the first NaN/Inf in forward or backward raises, naming the op, its module and where it was made."""
import inspect
import io
import warnings

import numpy as np
import pytest

import ops
from autograd import AnomalyError, Function, Tensor, detect_anomaly, name_scope
from autograd.inspect.anomaly import is_anomaly_enabled, user_frames

HERE = __file__


def line_of(marker):
    """Line number in this file of the first line containing ``marker`` after the marker definition."""
    lines = inspect.getsource(inspect.getmodule(line_of)).splitlines()
    hits = [i + 1 for i, ln in enumerate(lines) if marker in ln and "line_of(" not in ln]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


class NaNGrad(Function):
    """Identity whose backward returns NaN for the second input element."""

    def forward(self, x):
        return x * 1

    def backward(self, gy):
        g = gy.copy()
        g[1] = np.nan
        return g


class Raises(Function):
    def forward(self, x):
        return x * 1

    def backward(self, gy):
        raise ValueError("broken backward")


# Called through a wrapper, as every op in ``ops`` is: the wrapper's frame is library plumbing.
def nan_grad(x):
    return NaNGrad()(x)


def raises(x):
    return Raises()(x)


@pytest.fixture(autouse=True)
def quiet_numpy():
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def test_forward_nan_names_the_op_module_and_line():
    x = Tensor(np.array([1.0, -1.0, 2.0]), requires_grad=True)
    with pytest.raises(AnomalyError) as info:
        with detect_anomaly():
            with name_scope("block"), name_scope("act"):
                ops.log(x)  # MARK-forward-log
    e = info.value
    assert (e.op, e.scope, e.phase) == ("Log", "block.act", "forward")
    msg = str(e)
    assert msg.startswith("forward of Log in module block.act produced NaN in output 0 (shape (3,), 1 non-finite of 3")
    assert f'File "{HERE}", line {line_of("MARK-forward-log")}' in msg
    assert "ops.log(x)" in msg
    assert "autograd/function.py" not in msg and "ops/arithmetic.py" not in msg


def test_forward_inf_and_only_the_first_bad_op():
    x = Tensor(np.array([1.0, 800.0]), requires_grad=True)
    with pytest.raises(AnomalyError) as info:
        with detect_anomaly():
            y = x * 2.0
            z = ops.exp(y)       # overflows to Inf: the first bad op
            ops.log(z) * 3.0     # never runs
    assert info.value.op == "Exp" and info.value.phase == "forward"
    assert "produced Inf" in str(info.value)
    assert "top level" in str(info.value)


def test_backward_nan_names_the_op_and_where_it_was_created():
    x = Tensor(np.ones(3), requires_grad=True)
    with detect_anomaly():
        with name_scope("mixed_6b"), name_scope("branch_2"):
            y = nan_grad(x * 2.0)  # MARK-backward-create
        loss = (y * 3.0).sum()
        with pytest.raises(AnomalyError) as info:
            loss.backward()
    e = info.value
    assert (e.op, e.scope, e.phase) == ("NaNGrad", "mixed_6b.branch_2", "backward")
    msg = str(e)
    assert msg.startswith("backward of NaNGrad in module mixed_6b.branch_2 produced NaN in the gradient of input 0 "
                          "(shape (3,), 1 non-finite of 3 values)")
    assert f'line {line_of("MARK-backward-create")}' in msg
    assert e.stack is not None and e.function is y.creator
    assert x.grad is None                         # it stopped there: nothing reached the leaf


def test_backward_sqrt_of_zero():
    x = Tensor(np.array([0.0, 4.0]), requires_grad=True)
    with detect_anomaly():
        with name_scope("m"):
            y = ops.sqrt(x)
        with pytest.raises(AnomalyError, match=r"backward of Sqrt in module m produced Inf"):
            y.sum().backward()


def test_backward_only_mode_names_the_op_but_not_the_line():
    x = Tensor(np.ones(3), requires_grad=True)
    with name_scope("late"):
        y = NaNGrad()(x)
    with pytest.raises(AnomalyError) as info:
        with detect_anomaly():
            y.sum().backward()
    assert info.value.op == "NaNGrad" and info.value.scope == "late"
    assert "run the forward pass inside detect_anomaly() too" in str(info.value)


def test_errors_inside_backward_are_reraised_with_the_origin():
    x = Tensor(np.ones(2), requires_grad=True)
    with detect_anomaly():
        with name_scope("head"):
            y = raises(x)  # MARK-raises
        with pytest.raises(AnomalyError) as info:
            y.sum().backward()
    msg = str(info.value)
    assert msg.startswith("backward of Raises in module head raised ValueError: broken backward")
    assert f'line {line_of("MARK-raises")}' in msg
    assert isinstance(info.value.__cause__, ValueError)


def test_without_anomaly_mode_nan_propagates_silently():
    assert not is_anomaly_enabled()
    x = Tensor(np.array([-1.0, 1.0]), requires_grad=True)
    y = ops.log(x)
    y.sum().backward()
    assert np.isnan(y.data[0]) and x.grad.shape == (2,)
    assert getattr(y.creator, "stack", None) is None      # no stack captured outside anomaly mode


def test_mode_is_restored_after_errors_and_can_be_nested():
    with pytest.raises(AnomalyError):
        with detect_anomaly():
            ops.log(Tensor(np.array([-1.0])))
    assert not is_anomaly_enabled()
    with detect_anomaly():
        with detect_anomaly(False):
            assert not is_anomaly_enabled()
            ops.log(Tensor(np.array([-1.0])))     # no error while disabled
        assert is_anomaly_enabled()
    assert not is_anomaly_enabled()


def test_finite_values_and_integer_outputs_pass():
    x = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    with detect_anomaly():
        y = ops.softmax_cross_entropy(x, np.array([0, 1]))
        y.backward()
        ops.reshape(Tensor(np.arange(4)), (2, 2))           # integer arrays are never "non-finite"
    assert np.isfinite(x.grad).all()


def test_creation_stack_shows_the_user_line_then_library_model_code():
    # A fake stack: pytest -> the user's script -> nn plumbing -> a model's forward -> autograd plumbing.
    # ops, minception and nn's module-call files declare themselves library code (register_library) on import.
    import os
    import traceback

    import minception.nn  # noqa: F401
    root = os.path.dirname(os.path.dirname(os.path.abspath(ops.__file__)))
    frames = traceback.StackSummary.from_list([
        ("/usr/lib/python3/site-packages/_pytest/python.py", 10, "call", "fn()"),
        ("/home/me/train.py", 42, "<module>", "loss = model(x)"),
        (os.path.join(root, "minception", "nn", "module.py"), 100, "__call__", "return self.forward(x)"),
        (os.path.join(root, "minception", "models", "inception_blocks.py"), 77, "forward", "y = self.branch_1(x)"),
        (os.path.join(root, "minception", "nn", "conv.py"), 30, "forward", "return ops.conv2d(x, w)"),
        (os.path.join(root, "ops", "conv.py"), 200, "conv2d", "return Conv2d(...)(x, w)"),
        (os.path.join(root, "autograd", "function.py"), 60, "__call__", "ys = self.forward(*xs)"),
    ])
    shown = [(os.path.basename(f.filename), f.lineno) for f in user_frames(frames)]
    assert shown == [("python.py", 10), ("train.py", 42), ("inception_blocks.py", 77), ("conv.py", 30)]


def test_anomaly_mode_works_with_the_trace():
    from autograd.inspect.trace import trace
    x = Tensor(np.ones(3), requires_grad=True)
    with detect_anomaly():
        with name_scope("blk"):
            y = NaNGrad()(x * 2.0)
        out = io.StringIO()
        with pytest.raises(AnomalyError, match="NaNGrad in module blk"):
            trace((y * 3.0).sum(), file=out)
    # the steps before the bad op were printed
    rows = [ln.split() for ln in out.getvalue().splitlines() if ln[:4].strip().isdigit()]   # not the header
    assert [row[1] for row in rows] == ["Sum", "Mul"]


def test_module_path_and_model_lines_with_nn_modules():
    from collections import OrderedDict

    from minception import nn
    model = nn.Sequential(OrderedDict(block=nn.Sequential(OrderedDict(fc1=nn.Linear(4, 3), act=nn.ReLU())),
                                      fc2=nn.Linear(3, 2)))
    x = Tensor(np.ones((2, 4), dtype=np.float32))
    with detect_anomaly():
        model(x).sum().backward()                        # finite: no error
        model.block.fc1.weight.data[0, 0] = np.nan      # poison a layer deep inside
        with pytest.raises(AnomalyError) as info:
            model(x)  # MARK-model-call
    e = info.value
    assert (e.op, e.scope, e.phase) == ("Linear", "block.fc1", "forward")
    msg = str(e)
    assert f'line {line_of("MARK-model-call")}' in msg and "nn/linear.py" in msg
    assert "nn/module.py" not in msg
