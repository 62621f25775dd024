"""One tensor feeding several consumers: its gradient is the sum of what every consumer sends back.

An Inception block's input feeds 3-4 branches and the residual shortcut, so the engine adds up to five
gradients per tensor. These tests check that sum against gradients written out by hand, for a leaf and for an
op's output, with three to five consumers (the first two alone would not show a sum that drops or overwrites the
later ones), with a consumer that uses the tensor twice, and with consumers whose backward hands the same array
object to two inputs (the sum must not add into it in place).
"""
import numpy as np
import pytest

import ops
from autograd import Tensor


def leaf(shape, seed):
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def upstream(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


def test_a_leaf_with_four_consumers():
    x = leaf((3, 4), 0)
    w = np.random.default_rng(1).standard_normal((4, 2))
    g = [upstream((3, 4), 2), upstream((3, 4), 3), upstream((3, 2), 4), upstream((3, 4), 5)]
    ys = [x * 2.0, ops.exp(x), x @ Tensor(w), x * x]
    loss = sum((y * Tensor(gi)).sum() for y, gi in zip(ys, g))
    loss.backward()
    expected = 2.0 * g[0] + np.exp(x.data) * g[1] + g[2] @ w.T + 2.0 * x.data * g[3]
    np.testing.assert_allclose(x.grad, expected, rtol=1e-12, atol=1e-12)


def test_an_op_output_with_five_consumers():
    """h = exp(x) feeds five consumers; dL/dx = exp(x) * (sum of the five gradients of h)."""
    x = leaf((2, 5), 10)
    h = ops.exp(x)
    scales = [1.0, -2.0, 3.0, 0.5, 4.0]
    g = [upstream((2, 5), 11 + i) for i in range(5)]
    loss = sum((h * s * Tensor(gi)).sum() for s, gi in zip(scales, g))
    loss.backward()
    dh = sum(s * gi for s, gi in zip(scales, g))
    np.testing.assert_allclose(x.grad, np.exp(x.data) * dh, rtol=1e-12, atol=1e-12)


def test_branches_like_an_inception_block():
    """h feeds three "branches" and a shortcut, the branch outputs are concatenated: dL/dh collects all four."""
    x = leaf((2, 3, 4), 20)
    h = x * 1.5
    branches = [h * 2.0, ops.exp(h), h * h]
    cat = ops.concat(branches, axis=1)
    out = cat[:, :3] + h                       # the "shortcut": the first branch's slice plus h
    g_cat, g_out = upstream(cat.shape, 21), upstream(out.shape, 22)
    loss = (cat * Tensor(g_cat)).sum() + (out * Tensor(g_out)).sum()
    loss.backward()
    g0, g1, g2 = g_cat[:, :3] + g_out, g_cat[:, 3:6], g_cat[:, 6:]
    dh = 2.0 * g0 + np.exp(h.data) * g1 + 2.0 * h.data * g2 + g_out
    np.testing.assert_allclose(x.grad, 1.5 * dh, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("add_first", [True, False], ids=["sum-first", "product-first"])
def test_shared_gradient_arrays_are_not_added_into(add_first):
    """``h + k`` hands one upstream array to both h and k, and both have further consumers (``h * k``,
    ``h * 2``). Adding a later gradient into that array in place would change the other tensor's gradient too;
    both orders of the consumers are tried."""
    x, x2 = leaf((4,), 30), leaf((4,), 31)
    h, k = x * 3.0, ops.exp(x2)
    g = [upstream((4,), 32 + i) for i in range(3)]
    terms = [((h + k) * Tensor(g[0])).sum(), ((h * k) * Tensor(g[1])).sum(), ((h * 2.0) * Tensor(g[2])).sum()]
    loss = terms[0] + terms[1] + terms[2] if add_first else terms[2] + terms[1] + terms[0]
    loss.backward()
    dh = g[0] + k.data * g[1] + 2.0 * g[2]
    dk = g[0] + h.data * g[1]
    np.testing.assert_allclose(x.grad, 3.0 * dh, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x2.grad, np.exp(x2.data) * dk, rtol=1e-12, atol=1e-12)


def test_a_tensor_consumed_many_times_in_a_chain():
    """x is used by every step of a short chain: y_k = y_{k-1} * x (so y_4 = x^5); dy_4/dx = 5 x^4."""
    x = leaf((6,), 40)
    y = x
    for _ in range(4):
        y = y * x
    g = upstream((6,), 41)
    (y * Tensor(g)).sum().backward()
    np.testing.assert_allclose(x.grad, 5.0 * x.data ** 4 * g, rtol=1e-12, atol=1e-12)
