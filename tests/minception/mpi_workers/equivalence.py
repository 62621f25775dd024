"""Worker: 10 training steps of a tiny scaled network, alone or as one rank of ``mpiexec -n N``.

Alone it trains on the whole global batch with plain batch norm: the reference. Under ``mpiexec -n N`` each rank
trains on its 1/N slice of every global batch, with synchronised batch norm and averaged gradients (through
``distributed.DataParallel``), starting from different random weights that the broadcast must make equal. For
each dtype, rank 0 writes the global loss of every step, the initial and the final parameters and buffers to
``--out`` (.npz) for ``test_distributed.py`` to compare.

    python equivalence.py --out one.npz
    mpiexec -n 2 python equivalence.py --out two.npz
"""
import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT)

import ops  # noqa: E402
from autograd import Tensor  # noqa: E402
from minception import data, distributed, models, nn, optim  # noqa: E402


def train(comm, dtype, steps, global_batch, lr, clip):
    """Returns (losses, initial state, final state) of one run."""
    rng = np.random.default_rng(7)
    n_images = global_batch * 3
    images = rng.integers(0, 256, size=(n_images, 3, 16, 16), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n_images)
    loader = data.DataLoader((images, labels), global_batch // comm.size, shuffle=True, drop_last=True,
                             transform=data.standard_augmentation(padding=2), seed=3, shard=(comm.rank, comm.size))

    nn.init.manual_seed(11 + comm.rank)       # rank 1 starts elsewhere: the broadcast must fix that; rank 0 and
                                              # the single process draw the same weights
    model = models.inception_resnet_v2(num_classes=10, width=0.0625, blocks=(0, 0, 0), small_input=True,
                                       dropout=0.0)
    model.to(dtype=dtype)
    dp = distributed.DataParallel(model, comm, sync_batch_norm=True) if comm.size > 1 else None
    initial = model.state_dict()
    opt = optim.RMSProp(model.named_parameters(), lr=lr, decay=0.9, eps=1.0, momentum=0.9, weight_decay=4e-5,
                        weight_decay_filter=optim.weights_only)
    losses = []
    for step in range(steps):
        epoch, index = divmod(step, len(loader))
        x, y = loader.batch(epoch, index)
        logits = model(Tensor(x.astype(dtype)))
        loss = ops.softmax_cross_entropy(logits, y, label_smoothing=0.1)
        value = loss.item()
        if dp is not None:
            value, _ = dp.batch_totals(value, 0, len(y))
        losses.append(value)
        opt.zero_grad()
        loss.backward()
        if dp is not None:
            dp.average_gradients()
        if clip is not None:
            optim.clip_grad_norm(opt.params, clip)
        opt.step()
    return losses, initial, model.state_dict()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--global-batch", type=int, default=32)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    comm = distributed.init()
    results = {}
    # float64 without gradient clipping, so that the scale of the averaged gradient matters; float32 with the
    # recipe's clipping and a smaller step: float32 rounding (and the ReLUs it flips) makes the two runs drift
    # apart as they train, and this keeps the drift of 10 steps below 1e-5
    for dtype, lr, clip in (("float64", 0.02, None), ("float32", 0.001, 2.0)):
        losses, initial, final = train(comm, np.dtype(dtype), args.steps, args.global_batch, lr, clip)
        results[f"{dtype}/losses"] = np.array(losses)
        results.update({f"{dtype}/initial/{k}": v for k, v in initial.items()})
        results.update({f"{dtype}/final/{k}": v for k, v in final.items()})
    if comm.is_main:
        np.savez(args.out, **results)


if __name__ == "__main__":
    sys.exit(distributed.run_or_abort(main))
