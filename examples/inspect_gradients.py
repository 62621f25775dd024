"""How residual connections carry the gradient: Inception-v4 against Inception-ResNet-v2, layer by layer.

    python examples/inspect_gradients.py                 # scaled networks, about 4 minutes on 2 CPU cores
    python examples/inspect_gradients.py --quick         # tiny networks, seconds (what CI runs)
    python examples/inspect_gradients.py --device cuda   # on a GPU, if CuPy is installed

Part 1, gradient flow. Both networks are built at the same (reduced) width and depth for 32x32 images, fed the
same batch of the synthetic shapes set, and measured with ``minception.inspect.gradient_flow``: the norm of the
weight gradient of every conv layer, and of the gradient arriving at every block's output, from the stem to the
head. Then each network trains a few steps (RMSProp as in the paper) and is measured again.

What to look for (the mechanism behind the paper's observation that the residual versions train faster). In
Inception-v4 the gradient passes through every block's convolutions and batch norms on its way down, and each
block multiplies its size by some factor; the factors compound, so the gradient at the stem ends up tens of
times larger (at initialisation, with batch norm: growing towards the input) or smaller than at the head, and
early and late layers get steps of very different relative size. In Inception-ResNet-v2 each block computes
``h_k = relu(h_{k-1} + s * f(h_{k-1}))``: the identity path hands the gradient of ``h_k`` straight to ``h_{k-1}``,
so within a stage the block-output gradient stays almost constant (the right-hand panel is flat between
reductions), and every block, early or late, learns from a gradient of the same size.

Measured with the defaults (width 0.125, blocks 2 4 2, batch 16, seed 0, CPU; docs/gradient_flow.png): at
initialisation ||dL/dh|| grows from 0.043 at the last Inception-C block to 1.76 at the stem of Inception-v4
(x40, up to x1.8 per block), and stays between 0.043 and 0.085 in Inception-ResNet-v2 (x1.9 in all, almost all
of it at the two reductions, which have no identity path). Thirty steps of training barely change either
picture. The run takes about 4 minutes on a 2-core CPU.

Part 2, a gradient check of one Inception block, printed step by step: an Inception-ResNet-A block in float64,
checked branch by branch and as a whole against central differences, then its backward pass traced one op at a
time (``autograd.trace``).

Outputs go to ``--out`` (default ``runs/inspect_gradients``): ``gradient_flow.png`` and ``gradient_flow.txt``.
"""
import argparse
import os
import sys
import time

import numpy as np

import autograd
import ops
from autograd import Tensor, gradcheck
from minception import data, models, nn, optim
from minception.inspect import gradient_flow, plot_gradient_flow

NETWORKS = {"Inception-v4": models.inception_v4, "Inception-ResNet-v2": models.inception_resnet_v2}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny networks and 2 steps (for CI)")
    p.add_argument("--width", type=float, default=0.125, help="width multiplier of every conv (paper: 1)")
    p.add_argument("--blocks", type=int, nargs=3, default=(2, 4, 2), metavar=("A", "B", "C"),
                   help="repeats of the A, B, C blocks (paper: v4 4 7 3, IR-v2 5 10 5)")
    p.add_argument("--steps", type=int, default=30, help="training steps between the two measurements")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.045, help="RMSProp learning rate (paper: 0.045)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--out", default=os.path.join("runs", "inspect_gradients"))
    p.add_argument("--skip-check", action="store_true", help="skip part 2 (the block gradient check)")
    args = p.parse_args(argv)
    if args.quick:
        args.width, args.blocks, args.steps, args.batch = 0.05, (1, 1, 1), 2, 4
    return args


def build(name, args):
    nn.init.manual_seed(args.seed)                   # same initial weights on every run
    return NETWORKS[name](num_classes=10, width=args.width, blocks=tuple(args.blocks), small_input=True,
                          dropout=0.0).to(args.device)


def batches(images, labels, batch, device, seed):
    """Endless shuffled batches of normalised images: (x Tensor (B,3,32,32), y int64 (B,))."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(labels))
        for start in range(0, len(order) - batch + 1, batch):
            idx = order[start:start + batch]
            yield Tensor(data.normalize(images[idx])).to(device), labels[idx]


def part_1_gradient_flow(args, out):
    n_images = max(args.batch * (args.steps + 1), 64)
    train, _ = data.make_synthetic(n_train=n_images, n_test=10, seed=args.seed)
    probe_x = Tensor(data.normalize(train.images[:args.batch])).to(args.device)
    probe_y = train.labels[:args.batch]
    flows, losses, lines = {}, {}, []
    for name in NETWORKS:
        model = build(name, args)
        model.train()
        print(f"\n{name}: width {args.width}, blocks {tuple(args.blocks)}, {model.num_parameters():,} parameters")
        flows[f"{name}, initial"] = gradient_flow(model, probe_x, probe_y, label=f"{name}, initial")
        opt = optim.RMSProp(model.named_parameters(), lr=args.lr, decay=0.9, eps=1.0, momentum=0.9)
        stream = batches(train.images, train.labels, args.batch, args.device, args.seed + 1)
        history = []
        start = time.perf_counter()
        for step in range(args.steps):
            x, y = next(stream)
            opt.zero_grad()
            loss = ops.softmax_cross_entropy(model(x), y)
            loss.backward()
            optim.clip_grad_norm(model.parameters(), max_norm=2.0)
            opt.step()
            history.append(loss.item())
        seconds = time.perf_counter() - start
        losses[name] = history
        flows[f"{name}, step {args.steps}"] = gradient_flow(model, probe_x, probe_y, label=f"{name}, step {args.steps}")
        if history:
            k = max(1, len(history) // 5)
            print(f"  training loss: first {np.mean(history[:k]):.3f}, last {np.mean(history[-k:]):.3f} "
                  f"(means of {k} steps; {seconds:.1f} s for {args.steps} steps)")

    for label, flow in flows.items():
        lines += [str(flow), ""]
    summary = compare(flows) + "\n" + explain(flows)
    print("\n" + summary)
    for label, flow in flows.items():
        if label.endswith("initial"):
            print(f"\n{label}, per block:\n{flow.block_table()}")
    with open(os.path.join(out, "gradient_flow.txt"), "w") as f:
        f.write(summary + "\n\n" + "\n".join(lines))
    colours = {"Inception-v4": "tab:red", "Inception-ResNet-v2": "tab:blue"}
    styles = {label: {"color": colours[label.split(",")[0]], "linestyle": "-" if "initial" in label else "--"}
              for label in flows}
    path = os.path.join(out, "gradient_flow.png")
    plot_gradient_flow(flows, path, styles=styles,
                       title=f"Gradient flow, input to output (width {args.width}, blocks {tuple(args.blocks)}, "
                             f"batch {args.batch}; dashed: after {args.steps} RMSProp steps)")
    print(f"\nplot: {path}\ntables: {os.path.join(out, 'gradient_flow.txt')}")
    return flows


def compare(flows):
    """The two numbers that tell the story, per network and time."""
    head = (f"{'network':<34s}  {'loss':>7s}  {'|dL/dW| stem':>12s}  {'|dL/dW| head':>12s}  {'stem/head':>9s}  "
            f"{'|dL/dh| 1st block':>17s}  {'|dL/dh| last block':>18s}  {'1st/last':>8s}")
    lines = ["how much gradient reaches the input side", head, "-" * len(head)]
    for label, flow in flows.items():
        stem = flow.layers[0].grad_norm
        last = flow.layers[-1].grad_norm
        body = [b for b in flow.blocks if b.output_grad_norm == b.output_grad_norm]
        first_h, last_h = body[0].output_grad_norm, body[-2].output_grad_norm if len(body) > 1 else float("nan")
        lines.append(f"{label:<34s}  {flow.loss:7.4f}  {stem:12.3e}  {last:12.3e}  {stem / last:9.3f}  "
                     f"{first_h:17.3e}  {last_h:18.3e}  {first_h / last_h:8.3f}")
    lines.append("(stem: the first conv; head: the final linear layer; blocks: the stem's output and the last block "
                 "before the head)")
    return "\n".join(lines)


def explain(flows):
    """One sentence per network: how much the block-output gradient changes from the last block to the stem, and
    the largest change across a single block (the identity path keeps the latter near 1)."""
    lines = []
    for label, flow in flows.items():
        if not label.endswith("initial"):
            continue
        norms = [b.output_grad_norm for b in flow.blocks[:-1] if b.output_grad_norm == b.output_grad_norm]
        steps = [a / b for a, b in zip(norms[:-1], norms[1:]) if b > 0]
        worst = max(steps, key=lambda r: abs(np.log(r))) if steps else float("nan")
        lines.append(f"{label.split(',')[0]}: ||dL/dh|| at the stem / at the last block = {norms[0] / norms[-1]:.2f}; "
                     f"the largest change across one block is x{worst:.2f}")
    return "\n".join(lines)


def part_2_block_check(args):
    print("\n" + "=" * 100 + "\nA gradient check of one Inception block, step by step\n" + "=" * 100)
    nn.init.manual_seed(args.seed)
    width = 0.05 if args.quick else 0.1
    rules = models.Rules(width=width, small_input=True)
    cin = rules.channels(384)
    block = models.InceptionResNetA(cin, rules, version=2, scale=0.17).to(dtype=np.float64)
    rng = np.random.default_rng(args.seed)
    x = Tensor(rng.standard_normal((2, cin, 5, 5)), requires_grad=True, name="x")
    print(f"Inception-ResNet-A (v2): {tuple(x.shape)} -> {tuple(block(x).shape)}, {block.num_parameters()} "
          f"parameters, float64, training mode (batch statistics), residual scale {block.scale}")
    for name, branch in block.named_children():
        if name.startswith("branch"):             # each branch reads the block input
            gradcheck(lambda t, b=branch: b(t), [x], params=branch.named_parameters(), mode="directional")
            print(f"  gradcheck {name:<8s} ok  ({sum(p.size for _, p in branch.named_parameters()):,} parameters)")
    gradcheck(lambda t: block(t), [x], params=block.named_parameters(), mode="directional", n_directions=5)
    print("  gradcheck whole block ok: analytic gradients match central differences")
    y = block(x)
    upstream = Tensor(rng.standard_normal(y.shape))
    print("\nits backward pass, one op per line (input gradients named by parameter):")
    records = autograd.trace((y * upstream).sum(), names=block.named_parameters())
    print(f"\n{len(records)} steps; ops: {records.by_op()}")


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    part_1_gradient_flow(args, args.out)
    if not args.skip_check:
        part_2_block_check(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
