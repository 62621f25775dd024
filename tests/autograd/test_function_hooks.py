"""PrintHook, TimerHook and MemoryHook (autograd/inspect/*_hook.py: function hooks used as context managers)."""
import gc
import io
import time

import numpy as np
import pytest

import ops
from autograd import Function, MemoryHook, PrintHook, Tensor, TimerHook, name_scope
from autograd.inspect.memory_hook import format_bytes
from autograd.hooks import active_function_hooks


def small_net(seed=0):
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal((4, 6)), requires_grad=True, name="x")
    w = Tensor(rng.standard_normal((6, 3)), requires_grad=True, name="w")
    with name_scope("layer"):
        h = ops.relu(x @ w)
    return x, w, (h * h).sum()


class Sleep(Function):
    """Identity that takes a known time in forward and backward."""

    def __init__(self, seconds):
        self.seconds = seconds

    def forward(self, x):
        time.sleep(self.seconds)
        return x * 1

    def backward(self, gy):
        time.sleep(2 * self.seconds)
        return gy * 1


class ToyConv2d(Function):
    """Shapes of a 3x3 stride-1 'valid' convolution, no arithmetic (to check the column-buffer size)."""

    lowers_to_im2col = True

    def forward(self, x, w):
        n, _, h, wd = x.shape
        return np.zeros((n, w.shape[0], h - w.shape[2] + 1, wd - w.shape[3] + 1), dtype=x.dtype)

    def backward(self, gy):
        return None, None


class SaveBig(Function):
    """Keeps an extra array of 1000 float64 (8000 bytes) for backward."""

    def forward(self, x):
        self.big = np.ones(1000)
        return x * 1

    def backward(self, gy):
        return gy * 1


class Temporary(Function):
    """Allocates a 1 MB temporary inside forward and drops it."""

    def forward(self, x):
        tmp = np.ones(125_000)            # 1,000,000 bytes
        return x * float(tmp[0])

    def backward(self, gy):
        return gy


def test_hooks_are_removed_when_the_block_ends():
    with PrintHook(file=io.StringIO()) as p, TimerHook() as t, MemoryHook() as m:
        assert active_function_hooks() == [p, t, m]
    assert active_function_hooks() == []
    with pytest.raises(ZeroDivisionError):
        with TimerHook():
            1 / 0
    assert active_function_hooks() == []


def test_print_hook_prints_forward_and_backward():
    out = io.StringIO()
    with PrintHook(file=out):
        x, w, loss = small_net()
        loss.backward()
    lines = out.getvalue().splitlines()
    assert [ln.split()[:2] for ln in lines] == [
        ["forward", "MatMul"], ["forward", "ReLU"], ["forward", "Mul"], ["forward", "Sum"],
        ["backward", "Sum"], ["backward", "Mul"], ["backward", "ReLU"], ["backward", "MatMul"]]
    assert "layer" in lines[0] and "(4,6) (6,3) -> (4,3)" in lines[0]
    assert "|gy|" in lines[-1] and "|gx|" in lines[-1]
    # after the block, nothing more is printed
    small_net()[2].backward()
    assert len(out.getvalue().splitlines()) == 8


def test_print_hook_phases_can_be_chosen():
    out = io.StringIO()
    with PrintHook(file=out, forward=False, stats=False):
        small_net()[2].backward()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and all(ln.startswith("backward") for ln in lines)
    assert "|gy|" not in lines[0]


def test_timer_hook_attributes_time_to_the_right_op():
    x = Tensor(np.ones(3), requires_grad=True)
    with TimerHook() as timer:
        with name_scope("slow"):
            y = Sleep(0.02)(x)
        (y * 2.0).sum().backward()
    totals = timer.totals()
    assert set(totals) == {"Sleep", "Mul", "Sum"}
    assert totals["Sleep"]["calls"] == 1
    assert 0.02 <= totals["Sleep"]["forward"] < 0.5
    assert 0.04 <= totals["Sleep"]["backward"] < 0.5
    assert totals["Mul"]["forward"] < 0.02
    assert len(timer.records) == 6                                     # 3 ops, forward and backward
    assert timer.total_time() == pytest.approx(sum(r[3] for r in timer.records))
    by_module = timer.totals(by="module")
    assert by_module["slow"]["calls"] == 1 and by_module["(top level)"]["calls"] == 2
    table = timer.summary()
    lines = table.splitlines()
    assert lines[2].split()[0] == "Sleep"                              # sorted by total time
    assert lines[-1].split()[0] == "total" and lines[-1].endswith("100.0%")
    with pytest.raises(ValueError, match="by must be"):
        timer.totals(by="layer")


def test_memory_hook_saved_for_backward_rises_then_falls():
    x = Tensor(np.ones(10), requires_grad=True)
    with MemoryHook() as mem:
        y = SaveBig()(x)
        loss = (y * 2.0).sum()
        during = mem.saved_bytes
        loss.backward()
    # SaveBig keeps 8000 bytes; Mul keeps only the factor its input's gradient needs: the constant 2.0
    assert during == 8000 + 8
    assert mem.peak_saved_bytes == during
    assert mem.saved_bytes == 0                      # the engine released every op after its backward
    assert mem.peak_bytes >= 8000 + 80 + 80 + 8     # x, y, the big array, the constant


def test_memory_hook_retain_graph_keeps_saved_arrays():
    x = Tensor(np.ones(10), requires_grad=True)
    with MemoryHook() as mem:
        loss = (SaveBig()(x) * 2.0).sum()
        loss.backward(retain_graph=True)
        assert mem.saved_bytes == 8008
        loss.backward()
        assert mem.saved_bytes == 0


def test_memory_hook_counts_buffers_once_and_forgets_dead_ones():
    with MemoryHook() as mem:
        a = np.ones(1000)                                   # 8000 bytes
        x = Tensor(a[:500], requires_grad=True)             # a view: counts as its owner, a
        y = ops.reshape(x, (25, 20))                        # another view of the same memory
        y2 = y * 1.0                                        # a new 4000-byte array
        assert mem.current_bytes == 8000 + 4000 + 8     # + the 8-byte constant 1.0
        del y2                                              # frees y2 and its Mul with the constant
        gc.collect()
        assert mem.current_bytes == 8000
    assert mem.peak_bytes == 12008
    assert mem.alive_by_role() == {"input": 8000}


def test_memory_hook_grad_mode_off_saves_nothing():
    from autograd import no_grad
    x = Tensor(np.ones(10), requires_grad=True)
    with MemoryHook() as mem, no_grad():
        SaveBig()(x)
    assert mem.peak_saved_bytes == 0


def test_memory_hook_column_buffers_from_shapes():
    x = Tensor(np.zeros((2, 3, 9, 8), dtype=np.float32), requires_grad=True)
    w = Tensor(np.zeros((5, 3, 3, 3), dtype=np.float32), requires_grad=True)
    with MemoryHook() as mem:
        with name_scope("stem"):
            ToyConv2d()(x, w)
    # columns: C*kh*kw = 27 rows, N*OH*OW = 2*7*6 = 84 columns, float32
    assert mem.column_buffers == [(27 * 84 * 4, "ToyConv2d", "stem", (2, 3, 9, 8), (5, 3, 3, 3))]
    assert "im2col" in mem.summary() and "stem" in mem.summary()


class ConvLikeName(ToyConv2d):
    """Same shapes as ToyConv2d, but it does not declare an im2col lowering: its name alone means nothing."""

    lowers_to_im2col = False


def test_memory_hook_counts_only_ops_that_declare_an_im2col_lowering():
    x = Tensor(np.zeros((2, 3, 9, 8), dtype=np.float32), requires_grad=True)
    w = Tensor(np.zeros((5, 3, 3, 3), dtype=np.float32), requires_grad=True)
    with MemoryHook() as mem:
        ConvLikeName()(x, w)
        ops.mul(x, x)                                    # two 4-D inputs, not a convolution
    assert mem.column_buffers == []


def test_memory_hook_measures_temporaries_with_tracemalloc():
    import tracemalloc
    x = Tensor(np.ones(4), requires_grad=True)
    with MemoryHook(temporaries=True) as mem:
        assert tracemalloc.is_tracing()
        (Temporary()(x) * 2.0).sum().backward()
    assert not tracemalloc.is_tracing()                     # stopped: the hook started it
    biggest = mem.largest_temporaries(1)[0]
    assert biggest[1:] == ("forward", "Temporary", "")
    assert 1_000_000 <= biggest[0] < 1_100_000
    assert "tracemalloc" in mem.summary()


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(3 * 1024 ** 3) == "3.0 GiB"


@pytest.mark.gpu
def test_hooks_on_the_gpu():
    import cupy as cp
    x = Tensor(cp.ones((64, 32), dtype=cp.float32), requires_grad=True)
    w = Tensor(cp.ones((32, 16), dtype=cp.float32), requires_grad=True)
    out = io.StringIO()
    with TimerHook() as timer, MemoryHook() as mem, PrintHook(file=out):
        loss = (ops.relu(x @ w) * 2.0).sum()
        during = mem.saved_bytes
        loss.backward()
    assert set(timer.totals()) == {"MatMul", "ReLU", "Mul", "Sum"}
    assert all(r[3] >= 0 for r in timer.records)
    assert during >= 64 * 32 * 4 + 32 * 16 * 4          # MatMul keeps x and w
    assert mem.saved_bytes == 0
    assert "|gx|" in out.getvalue()


def test_memory_hook_with_the_library_conv():
    from ops.conv import conv2d
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((3, 4, 9, 7)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((5, 4, 3, 3)).astype(np.float32), requires_grad=True)
    conv2d(x, w, stride=2, padding=1).sum().backward()  # compile the kernels first: tracemalloc slows compiling
    x.grad = w.grad = None
    with MemoryHook(temporaries=True) as mem:
        with name_scope("stem"):
            y = conv2d(x, w, stride=2, padding=1)
        during = mem.saved_bytes
        y.sum().backward()
    # columns: C*kh*kw = 36 rows, N*OH*OW = 3*5*4 = 60 columns, float32
    assert mem.column_buffers == [(36 * 60 * 4, "Conv2d", "stem", (3, 4, 9, 7), (5, 4, 3, 3))]
    assert during >= x.data.nbytes                      # conv keeps its input (it recomputes the columns)
    assert mem.saved_bytes == 0
    assert " / " in mem.summary() and "stem" in mem.summary()
