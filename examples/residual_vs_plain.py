#!/usr/bin/env python3
"""Where do residual connections start to pay? Inception-v4 against Inception-ResNet-v2 at growing depth.

    python3 examples/residual_vs_plain.py                              # the full sweep on Fashion-MNIST
    python3 examples/residual_vs_plain.py --estimate-only              # only time a few steps, print the estimate
    python3 examples/residual_vs_plain.py --dataset cifar10 --data-dir ~/data

The paper's central experimental claim (Szegedy et al. 2016, Figures 21-26) is that Inception-ResNet networks
reach a given accuracy in fewer training steps than Inception networks of similar cost. This script tests it at
several depths, training three networks under exactly the same conditions:

- ``inception_v4``: Inception-v4, no residual connections;
- ``inception_resnet_v2``: Inception-ResNet-v2 (paper variant) with the paper's residual scaling (the residual
  branch multiplied by 0.17 / 0.10 / 0.20 in the A / B / C blocks before it is added to the trunk);
- ``inception_resnet_v2_scale1``: the same network with scale 1.0 (plain ``x + F(x)``).

Same width, data, recipe, seeds and number of steps for each; the depth (the repeats of the A, B, C blocks) varies,
``--depths 1,1,1 2,4,2 4,8,4`` by default; ``--seeds 2`` repeats each run with seeds 0 and 1 (weights, data order,
augmentation and dropout all follow the seed). The recipe is ``examples/train_cifar_scaled.py``'s,
``minception.train.Recipe.scaled()`` with ``--lr`` and ``--batch-size`` (the paper's RMSProp, learning-rate
decay, gradient clipping, an exponential moving average of the weights for evaluation, label smoothing, weight
decay, random crop and flip). The test accuracy (of the averaged weights) is measured every
``--eval-every`` steps on the first ``--test-subset`` test images.

Reported per depth and network: the final test accuracy (mean over the seeds, and each seed's), the steps and
the training time (evaluation excluded) each run took to reach a common target accuracy (``--target``, or by
default 90% of the lowest final accuracy among that depth's runs, so that every run reaches it), and the time per
step. A run whose loss becomes NaN/inf is reported as diverged, with its step, and the sweep goes on.

Before training, the script builds each (depth, network) once and times a few steps and one evaluation batch,
then prints the expected run time of the whole sweep. The runs go one at a time.

Sizing: ``--steps``, ``--width``, ``--batch-size``, ``--eval-every``, ``--subset`` and ``--test-subset``. The
defaults (600 steps of 32 images at width 0.125 on all 60,000 training images, so a third of an epoch; the
test accuracy every 50 steps on the first 1,000 test images) are sized for about 2 hours of a 2-core CPU; the
deepest networks take most of it. ``--estimate-only`` prints the estimate for other settings without training.

Outputs in ``--out`` (default ``runs/residual_vs_plain``): ``results.md`` (the table, the settings and the command
line), ``accuracy_vs_steps.png`` (test accuracy against steps, one panel per depth, a thin line per seed and a
thick one for the mean), ``results.json`` (everything, curves included) and ``runs/<depth>_<network>_seed<k>.json``
(one per finished run, with each step's time). A run whose file exists with the same settings is not trained
again, so a sweep stopped by Ctrl-C continues where it stopped when started again with the same arguments
(``--fresh`` retrains all).

Exit status: 0 done, 2 bad arguments or the data set is unavailable, 130 Ctrl-C (the finished runs are kept and
the table shows them).
"""
import argparse
import json
import math
import os
import shlex
import sys
import time

import numpy as np

# Runs from a fresh clone without installing: put the repository root on the path.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from minception import data, models, nn  # noqa: E402
from minception.train import NonFiniteLossError, Recipe, Trainer, atomic_write  # noqa: E402

#: the networks compared: name -> (description, constructor taking the shared keyword arguments)
NETWORKS = {
    "inception_v4": ("Inception-v4 (no residual connections)",
                     lambda **kw: models.inception_v4(**kw)),
    "inception_resnet_v2": ("Inception-ResNet-v2, residual scale 0.17/0.10/0.20 (the paper's)",
                            lambda **kw: models.inception_resnet_v2(**kw)),
    "inception_resnet_v2_scale1": ("Inception-ResNet-v2, residual scale 1.0",
                                   lambda **kw: models.inception_resnet_v2(residual_scale=(1.0, 1.0, 1.0), **kw)),
}

#: the recipe (examples/train_cifar_scaled.py's); --lr and --batch-size replace its learning rate and batch
RECIPE = Recipe.scaled()
# Defaults sized for about 2 hours of a 2-core CPU for the whole default sweep (18 runs, one at a time).
DEFAULTS = dict(dataset="fashion-mnist", depths=["1,1,1", "2,4,2", "4,8,4"], seeds=2, steps=600, width=0.125,
                batch_size=RECIPE.batch_size, eval_every=50, subset=0, test_subset=1000, target=None, lr=RECIPE.lr,
                device="cpu", out=os.path.join("runs", "residual_vs_plain"))
EVAL_BATCH = 250
PROBE_STEPS = 3            # timed steps per (depth, network) for the estimate, after one warm-up step


def build_parser():
    d = DEFAULTS
    p = argparse.ArgumentParser(
        prog="residual_vs_plain.py",
        description="Inception-v4 vs Inception-ResNet-v2 (paper scaling, and scale 1.0) at several depths: final "
                    "test accuracy,\nsteps and training time to a common target accuracy. Prints its expected run "
                    "time first.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Outputs: OUT/results.md (table), OUT/accuracy_vs_steps.png (one panel per depth), OUT/results.json, "
               "OUT/runs/*.json.")
    p.add_argument("--dataset", choices=data.DATASETS, default=d["dataset"],
                   help=f"data set (default {d['dataset']}; 'synthetic' is the offline shapes set)")
    p.add_argument("--data-dir", default=None,
                   help="where the data set is, or is downloaded to (default $MINCEPTION_DATA or ~/.cache/minception; "
                        "Fashion-MNIST is also found in Debian's /usr/share/datasets/fashion-mnist)")
    p.add_argument("--no-download", dest="download", action="store_false", help="never download the data set")
    p.add_argument("--depths", nargs="+", metavar="A,B,C", default=d["depths"],
                   help=f"repeats of the A, B, C blocks, one triple per depth (default {' '.join(d['depths'])})")
    p.add_argument("--seeds", type=int, default=d["seeds"], help=f"runs per network and depth, seeds 0.. "
                                                                  f"(default {d['seeds']})")
    p.add_argument("--steps", type=int, default=d["steps"], help=f"optimizer steps per run (default {d['steps']})")
    p.add_argument("--width", type=float, default=d["width"], help=f"filter-count multiplier (default {d['width']})")
    p.add_argument("--batch-size", type=int, default=d["batch_size"], help=f"(default {d['batch_size']})")
    p.add_argument("--lr", type=float, default=d["lr"], help=f"initial learning rate (default {d['lr']})")
    p.add_argument("--eval-every", type=int, default=d["eval_every"],
                   help=f"steps between test evaluations (default {d['eval_every']})")
    p.add_argument("--subset", type=int, default=d["subset"], metavar="N",
                   help="train on the first N training images (default: all)")
    p.add_argument("--test-subset", type=int, default=d["test_subset"], metavar="N",
                   help=f"evaluate on the first N test images (default {d['test_subset']}; 0: all)")
    p.add_argument("--target", type=float, default=None, metavar="ACC",
                   help="common target test accuracy, 0..1 (default: per depth, 90%% of the lowest final accuracy "
                        "of its runs)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=d["device"], help=f"(default {d['device']})")
    p.add_argument("--out", default=d["out"], help=f"output folder (default {d['out']})")
    p.add_argument("--fresh", action="store_true", help="retrain runs whose results are already in OUT/runs")
    p.add_argument("--estimate-only", action="store_true", help="print the expected run time and stop")
    p.add_argument("--progress", action="store_true", help="show a progress bar per run")
    return p


def parse_depth(text):
    try:
        blocks = tuple(int(v) for v in text.split(","))
    except ValueError:
        blocks = ()
    if len(blocks) != 3 or min(blocks) < 0:
        raise ValueError(f"--depths: each depth must be three non-negative integers A,B,C, got {text!r}")
    return blocks


def check_args(args):
    """Raise ValueError for settings that cannot work; returns the depths as tuples."""
    depths = [parse_depth(t) for t in args.depths]
    if len(set(depths)) != len(depths):
        raise ValueError(f"--depths: a depth is listed twice ({' '.join(args.depths)})")
    for name in ("seeds", "steps", "batch_size", "eval_every"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.width > 0 or not args.lr > 0:
        raise ValueError(f"--width and --lr must be > 0, got {args.width} and {args.lr}")
    if args.subset < 0 or args.test_subset < 0:
        raise ValueError("--subset and --test-subset must be >= 0")
    if args.subset and args.subset < args.batch_size:
        raise ValueError(f"--subset {args.subset} is smaller than one batch of {args.batch_size}")
    if args.target is not None and not 0 < args.target <= 1:
        raise ValueError(f"--target is an accuracy in (0, 1], got {args.target}")
    return depths


def depth_name(blocks):
    return "x".join(map(str, blocks))


# ---------------------------------------------------------------------------------------------- one run ---
def recipe_of(args):
    """The sweep's recipe: ``RECIPE`` with ``--lr`` and ``--batch-size``."""
    return RECIPE.replace(lr=args.lr, batch_size=args.batch_size)


def recipe_key(recipe):
    """The recipe's fixed part, as saved with each run (a saved run is reused only with the same), under the names
    the runs have been saved with."""
    return dict(rmsprop_decay=recipe.rmsprop_decay, rmsprop_eps=recipe.rmsprop_eps, momentum=recipe.momentum,
                lr_decay=recipe.lr_decay, lr_decay_epochs=recipe.lr_decay_epochs, weight_decay=recipe.weight_decay,
                label_smoothing=recipe.label_smoothing, clip=recipe.clip_norm, ema_decay=recipe.ema_decay,
                dropout=recipe.dropout, crop_padding=recipe.crop_padding)


def fit(model, recipe, optimizer, train_loader, schedule, ema, steps, on_step, args, name, progress):
    """Take ``steps`` optimizer steps with the library's training loop; the only code that touches it.

    After each step, ``on_step(step, seconds, loss, evaluate)`` is called with the step's number, its own time
    and training loss, and ``evaluate(loader) -> accuracy`` (the EMA weights, in eval mode). Returns
    ``(status, message)``, status "completed", "diverged" (NaN/inf loss or gradient) or "interrupted" (Ctrl-C).
    """
    def callback(trainer, info):
        on_step(trainer.step, info["seconds"], info["loss"], lambda loader: trainer.evaluate(loader)[1])

    trainer = Trainer(model, optimizer, train_loader, None, epochs=math.ceil(steps / len(train_loader)),
                      schedule=schedule, ema=ema, label_smoothing=recipe.label_smoothing, clip_norm=recipe.clip_norm,
                      run_dir=None, name=name, device=args.device, max_steps=steps, log_every=0, checkpoint_every=0,
                      progress=progress, callbacks=[callback], print_fn=None)
    try:
        result = trainer.fit()
    except NonFiniteLossError as e:
        return "diverged", f"loss or gradient became non-finite at step {e.step}"
    return ("completed" if result.status in ("completed", "stopped") else result.status), result.message


def train_one(network, blocks, seed, loaded, args, steps, eval_every, test=None, progress=False):
    """Train ``network`` at depth ``blocks`` with ``seed`` for ``steps`` steps, evaluating every ``eval_every``
    (and after the last step) on ``test`` (default ``loaded.test``).

    Returns a dict: ``curve`` (a list of ``[step, test accuracy, training seconds so far, mean training loss since
    the previous point]``), ``step_s`` (each step's own time, seconds), ``eval_s`` (seconds of all evaluations),
    ``params``, ``status`` ("completed", "diverged", "interrupted") and ``message``.
    """
    train, mean, std = loaded.train, loaded.mean, loaded.std
    test = loaded.test if test is None else test
    recipe = recipe_of(args)
    nn.init.manual_seed(seed)
    model = NETWORKS[network][1](num_classes=train.num_classes, width=args.width, blocks=blocks, small_input=True,
                                 dropout=recipe.dropout)
    model.fuse()                        # sibling 1x1 heads as one conv: the same numbers, faster (nn.fusion)
    model.to(args.device)               # before the optimizer and EMA, so that their arrays live there too
    train_loader = recipe.train_loader(train, mean, std, seed=seed)
    test_loader = data.DataLoader(test, EVAL_BATCH, shuffle=False, mean=mean, std=std)

    out = {"curve": [], "step_s": [], "eval_s": 0.0, "params": model.num_parameters()}
    losses = []

    def on_step(step, seconds, loss, evaluate):
        out["step_s"].append(seconds)
        losses.append(loss)
        if step % eval_every == 0 or step == steps:
            t0 = time.perf_counter()
            acc = evaluate(test_loader)
            out["eval_s"] += time.perf_counter() - t0
            out["curve"].append([step, acc, float(sum(out["step_s"])), float(np.mean(losses))])
            losses.clear()

    out["status"], out["message"] = fit(model, recipe, recipe.optimizer(model), train_loader,
                                        recipe.schedule(len(train_loader)), recipe.ema(model), steps, on_step, args,
                                        network, progress)
    return out


# -------------------------------------------------------------------------------------------- estimate ---
def estimate(pending, loaded, args, say):
    """Time each (depth, network) of the ``pending`` runs on a few steps and one evaluation batch; return the
    expected seconds of those runs. Prints one line per depth.

    The first step of each network is not counted (it allocates the buffers); building the network is."""
    test_batch = loaded.test.subset(slice(0, min(EVAL_BATCH, len(loaded.test))))
    evals = len(range(args.eval_every, args.steps + 1, args.eval_every)) + (args.steps % args.eval_every != 0)
    configs = {}
    for blocks, _, network in pending:
        configs.setdefault(blocks, {}).setdefault(network, 0)
        configs[blocks][network] += 1
    total = 0.0
    for blocks, networks in configs.items():
        parts = []
        for network, count in networks.items():
            t0 = time.perf_counter()
            probe = train_one(network, blocks, 0, loaded, args, steps=1 + PROBE_STEPS, eval_every=1 + PROBE_STEPS,
                              test=test_batch)
            if probe["status"] == "interrupted":          # Ctrl-C while timing: stop the whole command
                raise KeyboardInterrupt
            setup_s = time.perf_counter() - t0 - sum(probe["step_s"]) - probe["eval_s"]   # building the network
            step_s = float(np.median(probe["step_s"][1:] or probe["step_s"] or [0.0]))
            eval_s = probe["eval_s"] * len(loaded.test) / len(test_batch)
            total += count * (setup_s + args.steps * step_s + evals * eval_s)
            parts.append(f"{network} {step_s:.2f} s/step")
        say(f"  depth {depth_name(blocks)}: " + ", ".join(parts))
    return total


def format_duration(seconds):
    seconds = int(round(seconds))
    h, m, s = seconds // 3600, seconds % 3600 // 60, seconds % 60
    return f"{h} h {m:02d} min" if h else (f"{m} min {s:02d} s" if m else f"{s} s")


# ------------------------------------------------------------------------------------------------ report ---
def first_reaching(curve, target):
    """(step, training seconds) of the first evaluation with accuracy >= target, or (None, None)."""
    for step, acc, seconds, _ in curve:
        if acc >= target:
            return step, seconds
    return None, None


def targets_per_depth(results, depths, fixed):
    """{depth name: target accuracy}: ``fixed``, or 90% of the lowest final accuracy among the depth's runs."""
    out = {}
    for blocks in depths:
        finals = [r["curve"][-1][1] for r in results if r["depth"] == depth_name(blocks)
                  and r["status"] == "completed" and r["curve"]]
        out[depth_name(blocks)] = fixed if fixed is not None else (0.9 * min(finals) if finals else None)
    return out


def results_table(results, depths, targets):
    """The markdown table: one row per (depth, network)."""
    head = ("| depth (A,B,C) | network | params | final test acc: mean (per seed) | target | steps to target: "
            "mean (per seed) | training s to target: mean | s/step |")
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for blocks in depths:
        dn, target = depth_name(blocks), targets[depth_name(blocks)]
        for network in NETWORKS:
            runs = sorted((r for r in results if r["depth"] == dn and r["network"] == network),
                          key=lambda r: r["seed"])
            if not runs:
                continue
            finals, reached, seconds, per_seed_acc, per_seed_steps = [], [], [], [], []
            for r in runs:
                if r["status"] != "completed" or not r["curve"]:
                    # a diverged run failed at the step after the last one it timed
                    per_seed_acc.append(f"{r['status']} at step {len(r['step_s']) + 1}"
                                        if r["status"] == "diverged" else r["status"])
                    per_seed_steps.append("-")
                    continue
                finals.append(r["curve"][-1][1])
                per_seed_acc.append(f"{100 * finals[-1]:.1f}")
                s, t = first_reaching(r["curve"], target) if target is not None else (None, None)
                per_seed_steps.append("-" if target is None else "not reached" if s is None else str(s))
                if s is not None:
                    reached.append(s)
                    seconds.append(t)
            acc = f"{100 * np.mean(finals):.1f}%" if finals else "-"
            if target is None:
                steps = "-"
            elif len(reached) == len(runs):
                steps = f"{np.mean(reached):.0f}"
            else:
                steps = "not reached" if not reached else f"{np.mean(reached):.0f} ({len(reached)}/{len(runs)} reached)"
            secs = "-" if not seconds else f"{np.mean(seconds):.{0 if np.mean(seconds) >= 10 else 1}f}"
            timed = [s for r in runs for s in (r["step_s"][1:] or r["step_s"])]      # the first step allocates
            step_s = f"{np.median(timed):.3f}" if timed else "-"
            lines.append(f"| {','.join(map(str, blocks))} | {network} | {runs[0]['params']:,} | {acc} "
                         f"({' / '.join(per_seed_acc)}) | {'-' if target is None else f'{100 * target:.1f}%'} | "
                         f"{steps} ({' / '.join(per_seed_steps)}) | {secs} | {step_s} |")
    return "\n".join(lines)


def plot(results, depths, targets, path, title):
    """Test accuracy against steps, one panel per depth; a thin line per seed, a thick one for the mean."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(depths), figsize=(4.2 * len(depths) + 0.6, 4.0), sharey=True, squeeze=False)
    colors = dict(zip(NETWORKS, ("tab:blue", "tab:orange", "tab:green")))
    for ax, blocks in zip(axes[0], depths):
        dn = depth_name(blocks)
        for network in NETWORKS:
            runs = [r for r in results if r["depth"] == dn and r["network"] == network and r["curve"]]
            for r in runs:
                ax.plot([c[0] for c in r["curve"]], [100 * c[1] for c in r["curve"]], color=colors[network],
                        lw=0.7, alpha=0.45)
            lengths = {len(r["curve"]) for r in runs}
            if runs and len(lengths) == 1:
                mean = np.mean([[c[1] for c in r["curve"]] for r in runs], axis=0)
                ax.plot([c[0] for c in runs[0]["curve"]], 100 * mean, color=colors[network], lw=2, label=network)
        if targets.get(dn) is not None:
            ax.axhline(100 * targets[dn], color="gray", ls="--", lw=1, label="target")
        ax.set_title(f"blocks {','.join(map(str, blocks))}", fontsize=10)
        ax.set_xlabel("optimizer steps")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("test accuracy (%)")
    axes[0, 0].legend(loc="lower right", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_report(results, depths, args, loaded, argv, out):
    """results.md, results.json and accuracy_vs_steps.png in ``out``; returns the table."""
    targets = targets_per_depth(results, depths, args.target)
    table = results_table(results, depths, targets)
    n_train = len(loaded.train)
    settings = (f"{loaded.description}: {n_train} training images, {len(loaded.test)} test images; width "
                f"{args.width}, batch {args.batch_size}, {args.steps} steps, lr {args.lr}, evaluation every "
                f"{args.eval_every} steps, seeds 0..{args.seeds - 1}, device {args.device}")
    title = f"{loaded.description.split(' (')[0]}, width {args.width}, batch {args.batch_size}, {args.steps} steps"
    png = plot(results, depths, targets, os.path.join(out, "accuracy_vs_steps.png"), title)
    target_note = ("the common target is --target" if args.target is not None else
                   "the target of each depth is 90% of the lowest final accuracy among its runs")
    command = " ".join(["python3", "examples/residual_vs_plain.py"] + [shlex.quote(a) for a in argv])
    networks = "".join(f"- `{name}`: {description}\n" for name, (description, _) in NETWORKS.items())
    text = (f"# Inception-v4 vs Inception-ResNet-v2 at growing depth\n\n{settings}.\n\n{networks}\n"
            f"Command: `{command}`\n\n"
            f"{table}\n\nTest accuracy of the averaged (EMA) weights; {target_note}; steps to target are counted "
            f"at the evaluations (every {args.eval_every} steps); training seconds exclude evaluation.\n\n"
            f"![accuracy vs steps]({os.path.basename(png)})\n")
    atomic_write(os.path.join(out, "results.md"), lambda f: f.write(text.encode()))
    # each step's time stays in runs/*.json; here only its median, to keep the file small
    runs = [dict({k: v for k, v in r.items() if k != "step_s"},
                 median_step_s=float(np.median(r["step_s"][1:] or r["step_s"] or [0.0]))) for r in results]
    blob = {"settings": dict(vars(args)), "recipe": recipe_key(RECIPE), "data": loaded.description, "targets": targets,
            "runs": runs}
    atomic_write(os.path.join(out, "results.json"), lambda f: f.write(json.dumps(blob, indent=1).encode()))
    return table


# -------------------------------------------------------------------------------------------------- main ---
def run_key(args, loaded):
    """The settings a finished run's result depends on (a saved run is reused only when they are equal)."""
    return {"data": loaded.description, "n_train": len(loaded.train), "n_test": len(loaded.test),
            "steps": args.steps, "width": args.width, "batch_size": args.batch_size, "lr": args.lr,
            "eval_every": args.eval_every, "recipe": recipe_key(RECIPE), "device": args.device}


def run_file(run_dir, blocks, seed, network):
    return os.path.join(run_dir, f"{depth_name(blocks)}_{network}_seed{seed}.json")


def load_run(path, key):
    """The saved result in ``path`` if it exists, is readable and was made with the settings ``key``; else None."""
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) and saved.get("key") == json.loads(json.dumps(key)) else None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    say = print
    try:
        depths = check_args(args)
    except ValueError as e:
        print(f"residual_vs_plain.py: error: {e}", file=sys.stderr)
        return 2
    if args.device == "cuda":
        from autograd import gpu_available
        if not gpu_available():
            print("residual_vs_plain.py: error: --device cuda needs CuPy and a CUDA GPU", file=sys.stderr)
            return 2
    n_synthetic = (args.subset or max(10000, args.steps * args.batch_size), args.test_subset or 2000)
    try:
        loaded = data.load_dataset(args.dataset, data_dir=args.data_dir, download_missing=args.download,
                                   synthetic_sizes=n_synthetic)
    except data.DatasetError as e:
        print(f"residual_vs_plain.py: error: {args.dataset} is unavailable: {e}", file=sys.stderr)
        return 2
    train, test = loaded.train, loaded.test
    if args.subset:
        train = train.subset(slice(0, args.subset))
    if args.test_subset:
        test = test.subset(slice(0, args.test_subset))
    loaded = loaded._replace(train=train, test=test)
    if len(train) < args.batch_size:
        print(f"residual_vs_plain.py: error: {len(train)} training images give no batch of {args.batch_size}",
              file=sys.stderr)
        return 2

    runs = [(blocks, seed, network) for blocks in depths for seed in range(args.seeds) for network in NETWORKS]
    say(f"data: {loaded.description}, {len(train)} training and {len(test)} test images")
    say(f"{len(runs)} runs of {args.steps} steps ({len(depths)} depths x {len(NETWORKS)} networks x {args.seeds} "
        f"seeds), width {args.width}, batch {args.batch_size}")
    run_dir = os.path.join(args.out, "runs")
    key = run_key(args, loaded)
    done = {} if args.fresh else {run: saved for run in runs
                                  if (saved := load_run(run_file(run_dir, *run), key)) is not None}
    pending = [run for run in runs if run not in done]
    if done:
        say(f"{len(done)} runs were done before with the same settings (in {run_dir}); they are not trained again")
    if pending:
        say(f"timing {PROBE_STEPS} steps of each network for the estimate...")
        try:
            expected = estimate(pending, loaded, args, say)
        except KeyboardInterrupt:
            say("interrupted (Ctrl-C) while timing; nothing was trained")
            return 130
        say(f"expected run time: about {format_duration(expected)} for {len(pending)} runs "
            f"(training and evaluation, one run at a time)")
    if args.estimate_only:
        return 0

    os.makedirs(run_dir, exist_ok=True)
    results, t_start, status = [], time.perf_counter(), 0
    for i, run in enumerate(runs, 1):
        blocks, seed, network = run
        what = f"[{i}/{len(runs)}] depth {depth_name(blocks)} {network} seed {seed}"
        if run in done:
            results.append(done[run])
            continue
        t0 = time.perf_counter()
        r = train_one(network, blocks, seed, loaded, args, args.steps, args.eval_every, progress=args.progress)
        r.update(depth=depth_name(blocks), blocks=list(blocks), network=network, seed=seed, key=key,
                 wall_s=time.perf_counter() - t0)
        final = f"test acc {100 * r['curve'][-1][1]:.1f}%" if r["curve"] else "no evaluation"
        say(f"{what}: {r['status']}, {final}, {r['params']:,} params, {r['wall_s']:.0f} s  "
            f"(sweep: {format_duration(time.perf_counter() - t_start)})"
            + ("" if r["status"] == "completed" else f"  [{r['message']}]"))
        if r["status"] == "interrupted":
            status = 130
            break
        atomic_write(run_file(run_dir, *run), lambda f: f.write(json.dumps(r).encode()))
        results.append(r)

    table = write_report(results, depths, args, loaded, argv, args.out)
    say("")
    say(table)
    say(f"\nresults in {os.path.abspath(args.out)}/: results.md, accuracy_vs_steps.png, results.json, runs/  "
        f"[{format_duration(time.perf_counter() - t_start)}]")
    if status == 130:
        say("interrupted (Ctrl-C): the finished runs are kept; run the same command again to continue")
    return status


if __name__ == "__main__":
    sys.exit(main())
