"""Gradient flow: how much gradient reaches each layer and each block of a network, from input to output.

    flow = gradient_flow(model, images, labels)       # one forward and backward on the batch
    print(flow)                                        # per-block table, then per-layer table
    plot_gradient_flow({"Inception-v4": flow_v4, "Inception-ResNet-v2": flow_ir}, "flow.png")

Two measurements, both in the order the forward pass reaches them (input first):

* per layer: the norm of the gradient of each layer's weight, ``||dL/dW||`` (and ``||dL/dW|| / ||W||``, the
  size of an SGD step relative to the weight). A layer is a module that owns a weight of two or more
  dimensions (a conv or a linear layer); with ``kind="all"`` every module that owns parameters (batch norm too).
* per block: the norm of the gradient arriving at each block's output, ``||dL/dh_k||`` where ``h_k`` is the
  output of block ``k`` (a top-level child of the model by default: the stem, each Inception block, each
  reduction, the head), plus the combined weight-gradient norm of the block's layers.

Why it matters for the paper: in a deep plain network the activation gradient shrinks (or grows) by some factor
at each block on its way back to the input; a residual block adds the identity path ``h_k = relu(h_{k-1} + s*f(h_{k-1}))``,
so ``dL/dh_{k-1}`` receives ``dL/dh_k`` directly, whatever ``f`` does. The early layers of an Inception-ResNet
therefore see a larger share of the gradient, which is the mechanism behind the paper's observation that the
residual versions train faster.

``gradient_flow`` leaves the model as it found it: the parameters' ``.grad`` and the buffers (batch-norm running
statistics, which a training-mode forward updates) are restored afterwards.
"""
from dataclasses import dataclass, field

import numpy as np

from autograd import FunctionHook, Tensor
from autograd.backend import get_array_module

__all__ = ["LayerFlow", "BlockFlow", "GradientFlow", "gradient_flow", "plot_gradient_flow"]


def _norm(array):
    if array is None:
        return 0.0
    xp = get_array_module(array)
    a = array.astype(np.float64, copy=False)
    return float(xp.sqrt((a * a).sum()))


@dataclass
class LayerFlow:
    """One layer: its place from input to output, and the size of its weight gradient."""
    index: int            # 0 = the layer the forward pass reaches first
    name: str             # module path, e.g. "inception_a_1.branch_1.0.conv"
    block: str            # module path of its block, e.g. "inception_a_1"
    params: int           # number of parameter values in this layer (of the kind measured)
    grad_norm: float      # ||dL/dW|| over the layer's measured parameters
    weight_norm: float    # ||W||

    @property
    def ratio(self):
        """||dL/dW|| / ||W||: the relative size of a plain gradient step."""
        return self.grad_norm / self.weight_norm if self.weight_norm else float("nan")


@dataclass
class BlockFlow:
    """One block: the gradient arriving at its output and the gradient of its layers' weights."""
    index: int
    name: str
    layers: int
    params: int
    grad_norm: float              # ||dL/dW|| over all the block's measured parameters
    weight_norm: float
    output_grad_norm: float       # ||dL/dh|| at the block's output (nan when the block has no tensor output)
    output_shape: tuple = ()

    @property
    def ratio(self):
        return self.grad_norm / self.weight_norm if self.weight_norm else float("nan")


@dataclass(repr=False)
class GradientFlow:
    """The result of ``gradient_flow``: layers and blocks in forward order, and the loss of the batch.

    ``print(flow)`` prints both tables; in a notebook the flow shows as the same text.
    """
    layers: list
    blocks: list
    loss: float
    label: str = ""
    meta: dict = field(default_factory=dict)

    def layer_table(self):
        name_w = max([len(r.name) for r in self.layers] + [5])
        block_w = max([len(r.block) for r in self.layers] + [5])
        head = (f"{'#':>3s}  {'layer':<{name_w}s}  {'block':<{block_w}s}  {'params':>9s}  {'|grad W|':>9s}  "
                f"{'|W|':>9s}  {'|grad|/|W|':>10s}")
        lines = [head, "-" * len(head)]
        for r in self.layers:
            lines.append(f"{r.index:3d}  {r.name:<{name_w}s}  {r.block:<{block_w}s}  {r.params:9,d}  "
                         f"{r.grad_norm:9.3e}  {r.weight_norm:9.3e}  {r.ratio:10.3e}")
        return "\n".join(lines)

    def block_table(self):
        name_w = max([len(r.name) for r in self.blocks] + [5])
        head = (f"{'#':>3s}  {'block':<{name_w}s}  {'layers':>6s}  {'params':>10s}  {'|grad W|':>9s}  "
                f"{'|grad|/|W|':>10s}  {'|dL/d output|':>13s}  output shape")
        lines = [head, "-" * len(head)]
        for r in self.blocks:
            shape = "(" + ",".join(str(s) for s in r.output_shape) + ")" if r.output_shape else "-"
            lines.append(f"{r.index:3d}  {r.name:<{name_w}s}  {r.layers:6d}  {r.params:10,d}  {r.grad_norm:9.3e}  "
                         f"{r.ratio:10.3e}  {r.output_grad_norm:13.3e}  {shape}")
        return "\n".join(lines)

    def __str__(self):
        title = f"gradient flow{' of ' + self.label if self.label else ''} (loss {self.loss:.4f}), input first"
        return f"{title}\n\nper block:\n{self.block_table()}\n\nper layer:\n{self.layer_table()}"

    def __repr__(self):
        return (f"<GradientFlow{' of ' + self.label if self.label else ''}: {len(self.layers)} layers, "
                f"{len(self.blocks)} blocks, loss {self.loss:.4f}>\n{self.block_table()}")

    def first_to_last(self):
        """||dL/dW|| of the first layer divided by that of the last: how much of the gradient reaches the input."""
        if not self.layers:
            return float("nan")
        last = self.layers[-1].grad_norm
        return self.layers[0].grad_norm / last if last else float("inf")

    def plot(self, path, **kwargs):
        """Save the plot of this flow alone (see ``plot_gradient_flow``)."""
        return plot_gradient_flow({self.label or "model": self}, path, **kwargs)


class _ForwardOrder(FunctionHook):
    """Records the order in which the forward pass first uses each parameter array."""

    def __init__(self, ids):
        self.ids, self.order = ids, []
        self._seen = set()

    def forward_pre(self, fn, inputs):
        for a in inputs:
            key = id(a)
            if key in self.ids and key not in self._seen:
                self._seen.add(key)
                self.order.append(self.ids[key])


def _default_loss(output, target):
    import ops
    return ops.softmax_cross_entropy(output, target)


def gradient_flow(model, x, target, loss_fn=None, *, block_depth=1, kind="weights", label=None):
    """Run one forward and backward pass and measure the gradient per layer and per block.

    Args:
        model: an ``nn.Module``. Its current mode (train or eval) is used.
        x: the input batch (Tensor or array), e.g. ``(N, 3, 32, 32)``.
        target: what ``loss_fn`` compares the output with (class labels ``(N,)`` for the default loss).
        loss_fn: ``loss_fn(output, target) -> scalar Tensor``; default softmax cross-entropy.
        block_depth: a block is a module path of this many parts (1: the model's children).
        kind: "weights" (layers are modules with a weight of >= 2 dimensions: convs and linear layers; only that
            weight is measured) or "all" (every module with parameters, all of them).
        label: a name for tables and plot legends (default: the model's class name).

    Returns:
        ``GradientFlow``. The model's ``.grad`` fields and buffers are as they were before the call.
    """
    if kind not in ("weights", "all"):
        raise ValueError(f"gradient_flow: kind must be 'weights' or 'all', got {kind!r}")
    if block_depth < 1:
        raise ValueError(f"gradient_flow: block_depth must be >= 1, got {block_depth}")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("gradient_flow: the model has no parameter that requires grad")
    measured = [(n, p) for n, p in named if kind == "all" or (n.rsplit(".", 1)[-1] == "weight" and p.ndim >= 2)]
    layer_of = {n: n.rsplit(".", 1)[0] if "." in n else "" for n, _ in measured}

    # Block outputs: a forward hook on each module at block_depth records the output and its gradient's norm.
    modules = dict(model.named_modules())
    block_names = [n for n in modules if n and n.count(".") == block_depth - 1]
    block_out = {}
    handles = []

    def watch(name):
        def hook(module, args, output):
            if isinstance(output, Tensor) and output.requires_grad:
                entry = block_out.setdefault(name, {"shape": tuple(output.shape), "norm": 0.0})

                def grad_hook(g):
                    entry["norm"] = float(np.sqrt(entry["norm"] ** 2 + _norm(g) ** 2))
                output.register_hook(grad_hook)
        return hook

    for name in block_names:
        handles.append(modules[name].register_forward_hook(watch(name)))

    saved_grads = [p.grad for _, p in named]
    saved_buffers = [(b, b.copy()) for _, b in model.named_buffers() if hasattr(b, "copy")]
    order = _ForwardOrder({id(p.data): n for n, p in named})
    try:
        for _, p in named:
            p.grad = None
        with order:
            output = model(x if isinstance(x, Tensor) else Tensor(x))
        loss = (loss_fn or _default_loss)(output, target)
        loss.backward()
        grads = {n: p.grad for n, p in named}
        loss_value = float(loss.item())
    finally:
        for h in handles:
            h.remove()
        for (_, p), g in zip(named, saved_grads):
            p.grad = g
        for b, copy in saved_buffers:
            b[...] = copy

    params = dict(named)
    rank = {n: i for i, n in enumerate(order.order)}
    unused = len(rank)
    layer_params = {}
    for n, _ in measured:
        layer_params.setdefault(layer_of[n], []).append(n)
    # a layer's place: the first time forward used one of its parameters; unused layers go last
    layer_names = sorted(layer_params, key=lambda layer: min(rank.get(n, unused) for n in layer_params[layer]))

    def block_of(path):
        parts = path.split(".") if path else []
        return ".".join(parts[:block_depth]) if len(parts) >= block_depth else (path or "(model)")

    layers = []
    for i, layer in enumerate(layer_names):
        names = layer_params[layer]
        g = float(np.sqrt(sum(_norm(grads[n]) ** 2 for n in names)))
        w = float(np.sqrt(sum(_norm(params[n].data) ** 2 for n in names)))
        layers.append(LayerFlow(i, layer or "(model)", block_of(layer), sum(params[n].size for n in names), g, w))

    # blocks in the order their forward finished (the hook's order), then any that only own layers
    by_block = {name: [] for name in block_out}
    for r in layers:
        by_block.setdefault(r.block, []).append(r)
    blocks = []
    for i, (name, rows) in enumerate(by_block.items()):
        out = block_out.get(name)
        blocks.append(BlockFlow(
            index=i, name=name, layers=len(rows), params=sum(r.params for r in rows),
            grad_norm=float(np.sqrt(sum(r.grad_norm ** 2 for r in rows))),
            weight_norm=float(np.sqrt(sum(r.weight_norm ** 2 for r in rows))),
            output_grad_norm=out["norm"] if out else float("nan"),
            output_shape=out["shape"] if out else ()))
    return GradientFlow(layers, blocks, loss_value, label or type(model).__name__,
                        meta={"kind": kind, "block_depth": block_depth, "batch": tuple(getattr(x, "shape", ()))})


def plot_gradient_flow(flows, path=None, *, title="Gradient flow, input to output", styles=None):
    """Plot one or more ``GradientFlow`` objects and save a PNG; returns the matplotlib Figure.

    Left panel: ``||dL/dW||`` of every layer against its relative depth (0 = first layer, 1 = last), log scale.
    Right panel: ``||dL/dh||`` at every block's output against the block's relative depth, log scale.
    Relative depth lets networks of different lengths share the axes.

    Args:
        flows: a ``GradientFlow``, a list of them, or a dict ``label -> GradientFlow``.
        path: where to save (PNG at 120 dpi); None only returns the Figure.
        styles: optional dict ``label -> dict`` of matplotlib line keywords (color, linestyle, ...).

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend change), so it works without a display.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if isinstance(flows, GradientFlow):
        flows = [flows]
    if not isinstance(flows, dict):
        flows = {f.label or f"model {i}": f for i, f in enumerate(flows)}
    styles = styles or {}
    fig = Figure(figsize=(12, 4.6))
    FigureCanvasAgg(fig)
    ax_layer, ax_block = fig.subplots(1, 2)
    for label, flow in flows.items():
        style = dict(styles.get(label, {}))
        n = len(flow.layers)
        depth = [i / max(n - 1, 1) for i in range(n)]
        ax_layer.plot(depth, [max(r.grad_norm, 1e-30) for r in flow.layers], label=label, marker=".",
                      markersize=3, linewidth=1.2, **style)
        rows = [b for b in flow.blocks if b.output_grad_norm == b.output_grad_norm]
        m = len(flow.blocks)
        ax_block.plot([b.index / max(m - 1, 1) for b in rows], [max(b.output_grad_norm, 1e-30) for b in rows],
                      label=label, marker="o", markersize=4, linewidth=1.2, **style)
    ax_layer.set(yscale="log", xlabel="layer depth (0 = input side, 1 = output side)",
                 ylabel="||dL/dW|| per layer", title="weight gradient per layer")
    ax_block.set(yscale="log", xlabel="block depth (0 = stem, 1 = head)", ylabel="||dL/dh|| at block output",
                 title="activation gradient per block")
    for ax in (ax_layer, ax_block):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
