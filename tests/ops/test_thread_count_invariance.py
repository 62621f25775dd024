"""The fast CPU tier gives the same numbers, bit for bit, at any thread count.

Every sum the fast tier splits (the conv's weight gradient over the batch, batch norm's statistics) is cut by
the shapes alone, never by the number of threads, and its pieces are added in a fixed order
(``ops/kernels/cpu/conv2d.py``, "The same numbers at any thread count"). So a class whose students train on
laptops with 4, 8 or 12 cores gets the instructor's numbers. These tests force the engine's pool (and OpenBLAS,
where it can be set) to 1, 2, 3, 8 and 16 threads on whatever machine runs them, and compare with ``==``.
"""
import numpy as np
import pytest

import ops
from autograd import Tensor
from minception import models, nn
from minception.train import Recipe, loop
from ops.kernels.cpu import conv2d as cpu_conv2d
from ops.kernels.cpu.runtime import blas, threads

THREAD_COUNTS = (1, 2, 3, 8, 16)


class openblas_at:
    """OpenBLAS at ``n`` threads inside the block, then as before (nothing when NumPy's BLAS is not OpenBLAS)."""

    def __init__(self, n):
        self.n, self.lib = n, blas.openblas()

    def __enter__(self):
        if self.lib.set is not None:
            self.before = self.lib.get()
            self.lib.set(self.n)

    def __exit__(self, *exc):
        if self.lib.set is not None:
            self.lib.set(self.before)


def train(n_threads, steps, batch=32, network=models.inception_resnet_v2):
    """``steps`` training steps of the training example's network and recipe (Inception-ResNet-v2, width 0.125,
    blocks 1,1,1: RMSProp with momentum, clipping, label smoothing, dropout, an average of the weights) at
    ``n_threads`` threads (another ``network`` at the same size). Returns the losses and the final weights."""
    rng = np.random.default_rng(0)
    images = rng.standard_normal((steps, batch, 3, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, (steps, batch))
    nn.init.manual_seed(0)                                  # the weights, and dropout's seeds
    with ops.kernels.use("fast"), threads.use_threads(n_threads), openblas_at(n_threads):
        model = network(num_classes=10, width=0.125, blocks=(1, 1, 1), small_input=True).fuse()
        recipe = Recipe.scaled()
        optimizer, ema = recipe.optimizer(model), recipe.ema(model)
        losses = []
        for s in range(steps):
            r = loop.train_step(model, optimizer, Tensor(images[s]), labels[s],
                                label_smoothing=recipe.label_smoothing, clip_norm=recipe.clip_norm, ema=ema)
            losses.append(r.loss)
    return losses, {k: p.data.copy() for k, p in model.named_parameters()}


def test_twenty_training_steps_are_bit_identical_at_1_2_3_8_and_16_threads():
    ref_losses, ref_weights = train(THREAD_COUNTS[0], steps=20)
    assert len(set(ref_losses)) > 1                        # the steps really trained
    for n in THREAD_COUNTS[1:]:
        losses, weights = train(n, steps=20)
        assert losses == ref_losses, (
            f"training at {n} threads gave losses {losses[:4]}... instead of the 1-thread run's {ref_losses[:4]}...")
        for name, w in ref_weights.items():
            np.testing.assert_array_equal(weights[name], w, err_msg=f"{name} after 20 steps at {n} threads")


@pytest.mark.parametrize("network", [models.inception_v4, models.inception_resnet_v1])
def test_the_other_networks_train_bit_identically_at_1_3_and_16_threads(network):
    """Inception-v4 adds average pooling; Inception-ResNet-v1 has the thinnest branches."""
    ref = train(1, steps=4, batch=16, network=network)
    for n in (3, 16):
        losses, weights = train(n, steps=4, batch=16, network=network)
        assert losses == ref[0], f"{network.__name__} at {n} threads: losses {losses} instead of {ref[0]}"
        for name, w in ref[1].items():
            np.testing.assert_array_equal(weights[name], w, err_msg=f"{name} after 4 steps at {n} threads")


@pytest.mark.parametrize("shape, kernel, stride, padding", [
    ((13, 5, 9, 7), (3, 3), (2, 2), (1, 1)),
    ((16, 8, 16, 16), (1, 1), (1, 1), (0, 0)),
    ((7, 3, 11, 6), (1, 3), (1, 1), (0, 1)),
])
def test_conv_gradients_are_bit_identical_at_any_thread_count(monkeypatch, shape, kernel, stride, padding):
    """Every conv cut into as many parts as it has images, every part on the threaded path."""
    monkeypatch.setattr(cpu_conv2d, "MIN_PART_MACS", 1)
    monkeypatch.setattr(cpu_conv2d, "MIN_CHUNK_COLUMNS", 1)
    monkeypatch.setattr(cpu_conv2d, "MIN_THREADED_MACS", 0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((6, shape[1]) + kernel).astype(np.float32)
    gy = None
    results = []
    for n in THREAD_COUNTS:
        with threads.use_threads(n), openblas_at(n):
            y = cpu_conv2d.forward(x, w, None, stride, padding)
            if gy is None:
                gy = rng.standard_normal(y.shape).astype(np.float32)
            results.append((y,) + cpu_conv2d.backward(x, w, gy, stride, padding, True, True))
    for n, got in zip(THREAD_COUNTS[1:], results[1:]):
        for name, a, b in zip(("y", "dx", "dw"), results[0], got):
            np.testing.assert_array_equal(b, a, err_msg=f"conv {name} at {n} threads differs from 1 thread")


def test_parts_depend_on_the_shapes_only():
    big = 10**12
    assert cpu_conv2d._parts(64, 1024, big) == threads.split(64, cpu_conv2d.MAX_PARTS)
    assert cpu_conv2d._parts(5, 1024, big) == [0, 1, 2, 3, 4, 5]                   # at most one part per image
    assert cpu_conv2d._parts(64, 1024, 3 * cpu_conv2d.MIN_PART_MACS) == [0, 21, 42, 64]
    assert cpu_conv2d._parts(64, 1024, 10) == [0, 64]                              # tiny: one part
    assert cpu_conv2d._parts(16, 64, big) == [0, 4, 8, 12, 16]         # 8x8 images: 256 GEMM columns per part
    with threads.use_threads(7):
        assert cpu_conv2d._parts(64, 1024, big) == threads.split(64, cpu_conv2d.MAX_PARTS)


def test_memory_bound_parts_have_a_minimum_size():
    """16 threads do not cut a 4 MB tensor into 16 parts: one part per MIN_PART_BYTES at most."""
    with threads.use_threads(16):
        seen = threads.parallel_for(lambda lo, hi: hi - lo, 64, nbytes=4 * threads.MIN_PART_BYTES)
        assert seen == [16, 16, 16, 16]
        assert threads.parallel_for(lambda lo, hi: hi - lo, 64, nbytes=10) == [64]
        assert len(threads.parallel_for(lambda lo, hi: hi - lo, 64)) == 16          # no size given: no cap


def test_use_threads_sets_the_pool_for_the_block_only():
    before = threads.cpu_threads()
    with threads.use_threads(5):
        assert threads.cpu_threads() == 5
        seen = threads.parallel_for(lambda lo, hi: (lo, hi), 10)
        assert len(seen) == 5 and seen[0][0] == 0 and seen[-1][1] == 10
    assert threads.cpu_threads() == before
    with pytest.raises(ValueError, match="use_threads: n must be at least 1"):
        with threads.use_threads(0):
            pass

