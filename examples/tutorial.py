"""From one Tensor to an Inception block: watch every gradient, one op at a time.

Run it:   python examples/tutorial.py            (all six stages, a few seconds)
          python examples/tutorial.py --stage 4  (one stage)

Each stage builds something a little bigger, checks its gradients against finite differences
(``autograd.gradcheck``, in float64) and prints the backward pass step by step (``autograd.trace``): one line per
op, in the order backward runs them, with the op's module path, its shapes, the gradient it received (norm,
mean, max |g|, fraction of zeros) and the norm of each gradient it sent on.

    1. a single Tensor             y = sum(x*x + 3x), by hand and by autograd
    2. your own op                 a Function with forward and backward; tensor hooks and retain_grad
    3. a linear classifier         matmul, bias, softmax cross-entropy; parameter names in the trace
    4. convolution = im2col + GEMM  the column matrix, col2im as its adjoint, a conv built from them
    5. conv -> batch norm -> ReLU   the building box of every Inception network; function hooks
    6. an Inception block          four branches and a concat; graph drawing, timing, anomaly mode

The tests run this file (``tests/examples/test_tutorial.py``), so it cannot silently rot.
"""
import argparse
import os
import sys

import numpy as np

import autograd
import ops
from autograd import Function, Tensor, gradcheck, name_scope


def header(number, title):
    print(f"\n{'=' * 100}\nStage {number}: {title}\n{'=' * 100}")


def check(name, fn, inputs, **kwargs):
    """Gradient check with a printed verdict (gradcheck raises with a full report when it fails)."""
    gradcheck(fn, inputs, **kwargs)
    print(f"gradcheck {name}: analytic gradients match central differences (float64)")


# ------------------------------------------------------------------------------------------------ stage 1
def stage_1_tensor():
    header(1, "a single Tensor")
    x = Tensor(np.array([1.5, -0.5, 2.0]), requires_grad=True, name="x")
    y = (x * x + 3.0 * x).sum()           # four ops: Mul, Mul, Add, Sum
    print(f"x = {x.data}, y = sum(x*x + 3x) = {y.item():.4f}")
    print("backward, step by step (step 0 is the last op of forward):")
    autograd.trace(y)
    print(f"x.grad = {x.grad}   (by hand: 2x + 3 = {2 * x.data + 3})")
    assert np.allclose(x.grad, 2 * x.data + 3)
    # Two consumers of x (x*x uses it twice, 3x once): the engine adds their gradients.
    check("of y(x)", lambda t: (t * t + 3.0 * t).sum(), [Tensor(x.data.copy(), requires_grad=True)])


# ------------------------------------------------------------------------------------------------ stage 2
class Cube(Function):
    """y = x**3, written as the engine sees every op: forward and backward on raw arrays."""

    def forward(self, x):
        self.x = x                         # saved for backward, freed after it
        return x * x * x

    def backward(self, gy):
        return 3 * self.x * self.x * gy    # chain rule: dL/dx = dL/dy * dy/dx


def cube(x):
    return Cube()(x)


def stage_2_function():
    header(2, "your own op: a Function")
    x = Tensor(np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]), requires_grad=True, name="x")
    h = cube(x)
    h.retain_grad()                        # keep the gradient of this intermediate tensor
    seen = []
    handle = h.register_hook(lambda g: seen.append(float(np.abs(g).max())))   # called when dL/dh is known
    loss = (h * h).mean()
    autograd.trace(loss)
    handle.remove()
    print(f"dL/dh kept by retain_grad():\n{h.grad}\nthe hook saw max |dL/dh| = {seen[0]:.4f}")
    assert np.allclose(h.grad, 2 * h.data / h.size)
    check("of Cube", lambda t: cube(t), [Tensor(np.random.default_rng(0).standard_normal((3, 5)), requires_grad=True)])


# ------------------------------------------------------------------------------------------------ stage 3
def stage_3_linear():
    header(3, "a linear classifier: matmul, bias, softmax cross-entropy")
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((4, 5)))                        # a batch of 4 vectors, not trained
    w = Tensor(rng.standard_normal((3, 5)) * 0.5, requires_grad=True)
    b = Tensor(np.zeros(3), requires_grad=True)
    labels = np.array([0, 2, 1, 2])
    with name_scope("classifier"):
        logits = ops.linear(x, w, b)
    loss = ops.softmax_cross_entropy(logits, labels)
    # names= labels each leaf's gradient in the trace (with a model: names=model.named_parameters())
    autograd.trace(loss, names={"weight": w, "bias": b}, verbose=True)
    p = np.exp(logits.data - logits.data.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(4), labels] -= 1                                    # softmax minus one-hot, over the batch
    assert np.allclose(w.grad, p.T @ x.data / 4) and np.allclose(b.grad, p.sum(0) / 4)
    print("dL/dW = (softmax - onehot)^T x / N, as derived by hand")
    check("of linear + cross-entropy", lambda w_, b_: ops.softmax_cross_entropy(ops.linear(x, w_, b_), labels),
          [Tensor(w.data.copy(), requires_grad=True), Tensor(b.data.copy(), requires_grad=True)])


# ------------------------------------------------------------------------------------------------ stage 4
class TeachingConv2d(Function):
    """A 2-D convolution from im2col, one matrix product, and col2im: the same method ``ops.conv2d`` uses.

    x: (N, C, H, W), weight: (O, C, kh, kw) -> y: (N, O, OH, OW)
    """

    def __init__(self, stride, padding):
        self.stride, self.padding = stride, padding

    def forward(self, x, weight):
        from ops.kernels.reference.im2col import im2col
        o, c, kh, kw = weight.shape
        self.x_shape, self.weight = x.shape, weight
        self.cols = im2col(x, (kh, kw), self.stride, self.padding)          # (C*kh*kw, N*OH*OW)
        y = weight.reshape(o, -1) @ self.cols                                 # (O, N*OH*OW): one GEMM
        n, (_, _, h, w) = x.shape[0], x.shape
        oh = (h + 2 * self.padding[0] - kh) // self.stride[0] + 1
        ow = (w + 2 * self.padding[1] - kw) // self.stride[1] + 1
        return y.reshape(o, n, oh, ow).transpose(1, 0, 2, 3).copy()

    def backward(self, gy):
        from ops.kernels.reference.im2col import col2im
        o, c, kh, kw = self.weight.shape
        gy2 = gy.transpose(1, 0, 2, 3).reshape(o, -1)                         # (O, N*OH*OW)
        gw = (gy2 @ self.cols.T).reshape(self.weight.shape)                   # dL/dW = gY cols^T
        gcols = self.weight.reshape(o, -1).T @ gy2                            # dL/dcols = W^T gY
        gx = col2im(gcols, self.x_shape, (kh, kw), self.stride, self.padding)  # scatter back: the adjoint
        return gx, gw


def stage_4_im2col():
    header(4, "convolution = im2col + one matrix product; its gradient = col2im")
    from ops.kernels.reference.im2col import col2im, im2col
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    cols = im2col(x, (2, 2), (1, 1), (0, 0))
    print(f"a 4x4 image:\n{x[0, 0]}\nim2col with a 2x2 kernel, stride 1: every window becomes a column, "
          f"{cols.shape[0]} rows (kernel offsets) x {cols.shape[1]} columns (output positions):\n{cols}")

    # col2im is the adjoint (transpose) of im2col: <im2col(x), c> == <x, col2im(c)> for every x and c.
    # That identity is exactly why col2im computes the input gradient of im2col.
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((2, 3, 7, 6))
    geometry = ((3, 2), (2, 1), (1, 1))                     # kernel 3x2, stride (2, 1), padding 1
    c = rng.standard_normal(im2col(xs, *geometry).shape)
    left, right = (im2col(xs, *geometry) * c).sum(), (xs * col2im(c, xs.shape, *geometry)).sum()
    print(f"adjoint test: <im2col(x), c> = {left:.12f}, <x, col2im(c)> = {right:.12f}")
    assert abs(left - right) < 1e-9 * abs(left)

    x_t = Tensor(rng.standard_normal((2, 3, 7, 6)), requires_grad=True, name="x")
    w_t = Tensor(rng.standard_normal((4, 3, 3, 2)), requires_grad=True, name="weight")
    check("of TeachingConv2d (odd shapes, stride (2,1), padding 1)",
          lambda a, b: TeachingConv2d((2, 1), (1, 1))(a, b), [x_t, w_t])
    with name_scope("conv"):
        y = TeachingConv2d((2, 1), (1, 1))(x_t, w_t)
    loss = (ops.relu(y) * y).mean()
    autograd.trace(loss)

    if hasattr(ops, "conv2d"):          # the library's conv (Numba or CuPy kernels) computes the same thing
        x2, w2 = Tensor(x_t.data, requires_grad=True), Tensor(w_t.data, requires_grad=True)
        y2 = ops.conv2d(x2, w2, stride=(2, 1), padding=1)
        (ops.relu(y2) * y2).mean().backward()
        assert np.allclose(y2.data, y.data) and np.allclose(x2.grad, x_t.grad) and np.allclose(w2.grad, w_t.grad)
        print("ops.conv2d gives the same output and gradients as TeachingConv2d")


# ------------------------------------------------------------------------------------------------ stage 5
def stage_5_conv_bn_relu():
    header(5, "conv -> batch norm -> ReLU (nn.ConvBNReLU), the box every Inception network is made of")
    from minception import nn
    nn.init.manual_seed(0)                 # reproducible initial weights
    # fuse_relu=False: three ops, one per idea, to read in the trace below. The networks use the default,
    # fuse_relu=True: the ReLU runs inside the batch-norm op (one pass over the data fewer, the same numbers).
    box = nn.ConvBNReLU(3, 4, (3, 3), stride=2, padding=1, fuse_relu=False).to(dtype=np.float64)
    fused = nn.ConvBNReLU(3, 4, (3, 3), stride=2, padding=1).to(dtype=np.float64)
    fused.load_state_dict(box.state_dict())
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((2, 3, 7, 5)), requires_grad=True, name="x")
    # batch norm in training mode mixes the batch: the check covers that too (random upstream gradient)
    check("of ConvBNReLU (input and all parameters)", lambda t: box(t), [x],
          params=box.named_parameters())
    check("of ConvBNReLU with the ReLU fused into the batch norm", lambda t: fused(t), [x],
          params=fused.named_parameters())
    with autograd.MemoryHook() as memory, autograd.PrintHook(backward=False):
        with name_scope("box"):
            y = box(x)
        loss = (y * y).mean()
        autograd.trace(loss, names=box.named_parameters())
    print(memory.summary())


# ------------------------------------------------------------------------------------------------ stage 6
def stage_6_inception_block(out_dir):
    header(6, "an Inception block (Inception-A at a tiny width)")
    from minception import models, nn
    nn.init.manual_seed(0)
    block = models.InceptionA(8, models.Rules(width=0.05, small_input=True)).to(dtype=np.float64)
    rng = np.random.default_rng(2)
    x = Tensor(rng.standard_normal((2, 8, 5, 5)), requires_grad=True, name="x")
    y = block(x)
    print(f"Inception-A: {tuple(x.shape)} -> {tuple(y.shape)}, {block.num_parameters()} parameters, "
          f"branches {[name for name, _ in block.named_children()]}")
    # Gradient check branch by branch, then the whole block (random directions: many parameters).
    for name, branch in block.named_children():
        check(f"of {name}", lambda t, b=branch: b(t), [x], params=branch.named_parameters(), mode="directional")
    check("of the whole block", lambda t: block(t), [x], params=block.named_parameters(), mode="directional")

    with autograd.TimerHook() as timer:
        y = block(x)
        loss = (y * Tensor(rng.standard_normal(y.shape))).sum()
        records = autograd.trace(loss, names=block.named_parameters(), limit=12)
    print(f"\nops per type in this backward: {records.by_op()}")
    print(f"\nthe trace as a table, the first rows:\n{records.table(limit=8)}")
    print(f"\ntime per op type (forward and backward):\n{timer.summary()}")

    # The graph: every op, or one node per branch.
    os.makedirs(out_dir, exist_ok=True)
    y = block(x)
    for collapse, name in ((None, "inception_a_ops"), (1, "inception_a_branches")):
        dot_path = os.path.join(out_dir, name + ".dot")
        with open(dot_path, "w") as f:
            f.write(autograd.to_dot(y, names=block.named_parameters(), collapse=collapse))
        try:
            image = autograd.graph.render(y, os.path.join(out_dir, name + ".svg"), names=block.named_parameters(),
                                          collapse=collapse)
            print(f"graph drawn: {image}")
        except autograd.graph.GraphvizNotFound as e:
            # the whole message, on one line so that its 'dot' command can be copied: how to install Graphviz
            # and the command that draws this file
            print(f"graph as DOT text: {dot_path}\n  {e}")

    # Anomaly mode: poison one weight deep in a branch and let the engine say where the NaN appeared.
    block.branch2[1].conv.weight.data[0, 0, 0, 0] = np.nan
    try:
        with autograd.detect_anomaly():
            block(x)
    except autograd.AnomalyError as e:
        print(f"\nanomaly mode caught it:\n{e}")
        assert e.scope.startswith("branch2.1")


def main(argv=None):
    """Run the stages. ``argv``: the command-line arguments, e.g. ``["--stage", "4"]``; the script passes
    ``sys.argv[1:]``. ``None`` (the default) means no arguments, so that ``main()`` also runs in a Jupyter kernel,
    whose own command line (``-f kernel.json``) is not the tutorial's."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", type=int, choices=range(1, 7), help="run only this stage")
    parser.add_argument("--out", default=os.path.join("runs", "tutorial"), help="folder for the graph files")
    args = parser.parse_args([] if argv is None else argv)
    stages = {1: stage_1_tensor, 2: stage_2_function, 3: stage_3_linear, 4: stage_4_im2col,
              5: stage_5_conv_bn_relu, 6: lambda: stage_6_inception_block(args.out)}
    np.set_printoptions(precision=4, suppress=True, linewidth=120)
    for number, stage in stages.items():
        if args.stage in (None, number):
            stage()
    print("\nall stages ran; every gradient check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
