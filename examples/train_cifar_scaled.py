#!/usr/bin/env python3
"""Train a scaled-down Inception-v4 / Inception-ResNet on CIFAR-10 (or on a synthetic set when CIFAR-10 is absent).

    python examples/train_cifar_scaled.py                       # the default run: about 4 minutes on 2 cores
    python examples/train_cifar_scaled.py --model compare       # Inception-v4 vs the Inception-ResNets
    python examples/train_cifar_scaled.py --resume              # continue the run in --out exactly
    mpiexec -n 2 python examples/train_cifar_scaled.py          # data-parallel: 2 processes, batch 2 x 32

The networks are the paper's, with the CIFAR adaptations of docs/design.md: ``small_input=True`` (stride-1 stem,
"same" padding, 32 -> 16 -> 8), every filter count multiplied by ``--width`` and ``--blocks`` A/B/C repeats.
The recipe is ``minception.train.Recipe.scaled()`` (the recipe flags' defaults are its fields), the paper's
(section 4): RMSProp with decay 0.9, eps 1.0 (TensorFlow's form, eps inside the square
root) and momentum 0.9; the learning rate decayed by 0.94 every 2 epochs; gradient clipping (the paper gives no
threshold; 2.0 is the Inception-v3 paper's); evaluation with an exponential moving average of the parameters
(decay 0.9999 with TF's num_updates warm-up), which here also averages the BN running statistics (TF-slim's
moving averages do too; averaged weights evaluated with the statistics of the latest raw weights lost 20 points
in a 1,248-step run). Label smoothing 0.1 and weight decay 4e-5 come from Inception-v3 / TF-slim.

The learning rate differs from the paper: 0.02 instead of 0.045, measured on the synthetic set with the default
network (batch 32): after 250 steps 0.045 reached 24% test accuracy, 0.01 30%; after 750 steps 0.02 reached
48-53% and 0.01 47-52%, with a lower training loss for 0.02. With eps = 1.0 and gradients below 1, this RMSProp
acts like momentum SGD with step ``lr * g``, so 0.02 with momentum 0.9 is like SGD at 0.2.

Data: CIFAR-10 from ``--data-dir`` (or ``$MINCEPTION_DATA``, or ``~/.cache/minception``), downloaded there when
missing. A folder you named (``--data-dir`` or ``$MINCEPTION_DATA``) that holds no readable data set is an
error; only when the default location has none (and it cannot be downloaded), or with ``--synthetic``, the run
uses a synthetic 10-class shapes set drawn with Pillow. ``--dataset fashion-mnist`` trains on Fashion-MNIST
instead (28x28 gray images padded to 32x32, channel x3), read from ``--data-dir``, from Debian's
``dataset-fashion-mnist``, or downloaded with checksums.

Outputs go to ``--out`` (default ``runs/<model>``): ``metrics.jsonl`` (one JSON line per epoch), ``train_log.jsonl``
(every few steps), ``last.npz`` (the whole training state, for ``--resume``), ``best.npz`` (the weights of the best
epoch, ``model.load("best.npz")``), ``run.json`` (the settings) and ``curves.png``; in compare mode one such folder
per model plus ``compare.png`` and ``compare.txt``.

An existing run folder is never replaced by accident: a new run into a folder that holds a run is refused
unless ``--resume`` (continue it) or ``--overwrite`` (start again there) is given. With ``--overwrite`` every flag
and the whole configuration (whether the network fits in this machine's memory included) are checked before
anything in the folder changes, and the old run's files (``run.json``, the logs, ``last.npz``, ``best.npz``) stay
as they were until the new run writes its first checkpoint: a new run that fails or is killed before then leaves
the old run resumable exactly as it was. On ``--resume`` the folder's ``run.json``, ``metrics.jsonl`` and
``train_log.jsonl`` are checked field by field; a damaged one is exit 2 naming the file, the line and the field.
A disk that fills up, a read-only folder or a permission error ends the run with exit 2 and one line naming the
file; files are written atomically, so the last checkpoint is intact and ``--resume`` continues from it.

Data parallel (``pip install -e '.[distributed]'``): under ``mpiexec -n N`` each process trains a replica on its
own ``--batch-size`` slice of every global batch of ``N * batch-size`` images (rank r takes the r-th contiguous
slice), the gradients are averaged every step, and rank 0 alone evaluates, prints and writes the run folder.
``--sync-bn`` makes batch norm use the global batch's statistics: N processes then follow the single-process run
with batch ``N * batch-size`` step for step. ``--resume`` needs the same N; ``--model compare`` is not available.
The learning rate is not rescaled for the larger global batch. If one process fails, all of them exit, with its
message, even when it fails while importing. Every process must be started with the same flags and the same
``MINCEPTION_KERNELS``, ``MINCEPTION_DATA`` and (if set) ``OMP_NUM_THREADS``: a difference is exit status 2, naming
the setting and the processes.

Exit status: 0 done, 1 the loss became NaN/inf (the message names the step and the last good checkpoint), 2 bad
arguments (a flag out of range, a network too large for this machine, a run folder in the way, a data folder
without data, a run folder or checkpoint that cannot be resumed) or a file that cannot be written (a full disk, a
read-only folder, no permission), 130 Ctrl-C (a checkpoint was saved; ``--resume`` continues).
"""
import argparse
import errno
import json
import math
import os
import sys
import time

# The environment as the launcher gave it (the processes of an mpiexec job must agree on the settings in it).
_GIVEN_ENVIRONMENT = dict(os.environ)

# Under mpiexec, the processes started on one machine share its cores: unless OMP_NUM_THREADS says otherwise, each
# takes its share (N processes each using every core would fight over them). Set before NumPy loads its BLAS.
_LOCAL_PROCESSES = os.environ.get("MPI_LOCALNRANKS") or os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE") or ""
if _LOCAL_PROCESSES.isdigit() and int(_LOCAL_PROCESSES) > 1 and "OMP_NUM_THREADS" not in os.environ:
    _CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ["OMP_NUM_THREADS"] = str(max(1, _CORES // int(_LOCAL_PROCESSES)))


def _abort_the_job_on_an_uncaught_exception():
    """Under mpiexec: start MPI now, before anything that can fail, and make an exception that nothing catches end
    every process of the job, with its message. ``run_or_abort`` does that for ``main``, but the imports come
    first: a rank whose ``import ops`` fails (a bad ``MINCEPTION_KERNELS`` in its environment) would exit alone,
    and the others would wait for it in MPI's start-up forever (the launcher does not end a job when one process
    exits with an error). Any script gets the same from ``mpiexec -n N python -m mpi4py script.py``."""
    launched = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")   # distributed.environment's
    if not any(name in os.environ for name in launched):
        return                            # a plain process: nothing changes, mpi4py is not even imported
    try:
        from mpi4py import MPI            # initialises MPI: every rank gets here within a second of its start
    except ImportError:
        return                            # distributed.init() says what is missing
    world = MPI.COMM_WORLD
    if world.Get_size() == 1:
        return

    def abort(kind, error, trace):
        sys.__excepthook__(kind, error, trace)
        where = f"[rank {world.Get_rank()} of {world.Get_size()}]"
        sys.stderr.write(f"{where} failed: {kind.__name__}: {error}\n"
                         f"{where} aborting all {world.Get_size()} processes of the job\n")
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(0.5)                   # lets the launcher forward the lines above (failure.ABORT_GRACE_S)
        world.Abort(1)

    sys.excepthook = abort


_abort_the_job_on_an_uncaught_exception()

# Runs from a fresh clone without installing: put the repository root on the path.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import ops  # noqa: E402
from minception import data, distributed, models, nn  # noqa: E402
from minception.train import (RUN_FILES, CheckpointError, NonFiniteLossError, Recipe, Trainer,  # noqa: E402
                              atomic_write, compare, existing_run_files, read_jsonl)
from minception.files import remove_stale_temp_files  # noqa: E402
from minception.files.shorten import shorten  # noqa: E402
from minception.models.footprint import estimate, machine_memory  # noqa: E402
from minception.train.run_folder import (METRICS, METRICS_FIELDS, TRAIN_LOG, TRAIN_LOG_FIELDS,  # noqa: E402
                                         RunFileError, parse_json, read_text)
from autograd.backend import GPUUnavailableError, check_device  # noqa: E402

MODELS = {
    "inception_v4": lambda **kw: models.inception_v4(**kw),
    "inception_resnet_v1": lambda **kw: models.inception_resnet_v1(**kw),
    "inception_resnet_v2": lambda **kw: models.inception_resnet_v2(**kw),
    "inception_resnet_v2_released": lambda **kw: models.inception_resnet_v2(variant="released", **kw),
}
COMPARE_DEFAULT = "inception_v4,inception_resnet_v1,inception_resnet_v2"

#: the training recipe (minception/train/recipe.py says where each value comes from)
RECIPE = Recipe.scaled()
#: the flags that set a field of the recipe: flag -> Recipe field (their defaults are the recipe's values)
RECIPE_FLAGS = {"batch_size": "batch_size", "lr": "lr", "optimizer": "optimizer_name", "rmsprop_eps": "rmsprop_eps",
                "momentum": "momentum", "lr_decay": "lr_decay", "lr_decay_epochs": "lr_decay_epochs",
                "weight_decay": "weight_decay", "label_smoothing": "label_smoothing", "clip": "clip_norm",
                "ema_decay": "ema_decay", "ema_bn": "ema_bn", "dropout": "dropout", "augment": "augment"}
#: recipe flags where 0 turns the piece off (the recipe's None)
OFF_AT_ZERO = ("clip", "ema_decay")

# Defaults (chosen by measurement on a 2-core machine; see docs/performance.md, "Training runs").
DEFAULTS = {
    "model": "inception_resnet_v2",
    "compare_models": COMPARE_DEFAULT,
    "width": 0.125,
    "blocks": "1,1,1",
    "epochs": 4,
    **{flag: (0.0 if getattr(RECIPE, field) is None else getattr(RECIPE, field))
       for flag, field in RECIPE_FLAGS.items()},
    "residual_scale": None,
    "subset": 10000,
    "test_subset": 1000,
    "dataset": "cifar10",
    "data_dir": None,
    "synthetic": False,
    "download": True,
    "out": None,
    "device": "cpu",
    "kernels": None,
    "seed": 0,
    "resume": False,
    "overwrite": False,
    "max_steps": None,
    "checkpoint_every": 100,
    "log_every": 10,
    "check_every": None,
    "progress": None,
    "sync_bn": False,
}
# settings that may change when resuming (everything else must match the saved run)
RESUME_MAY_CHANGE = {"epochs", "device", "kernels", "data_dir", "download", "out", "resume", "max_steps", "progress",
                     "checkpoint_every", "check_every"}
# the smallest value of each integer flag
INT_MINIMUMS = {"epochs": 1, "batch_size": 1, "subset": 0, "test_subset": 0, "seed": 0, "max_steps": 0,
                "checkpoint_every": 0, "log_every": 0, "check_every": 1}
# each real-valued flag: (lowest, whether the lowest itself is allowed, bound above (excluded) or None)
REAL_RANGES = {"width": (0, False, None), "lr": (0, False, None), "rmsprop_eps": (0, True, None),
               "momentum": (0, True, 1), "lr_decay": (0, False, None), "lr_decay_epochs": (0, False, None),
               "weight_decay": (0, True, None), "label_smoothing": (0, True, 1), "clip": (0, True, None),
               "ema_decay": (0, True, 1), "dropout": (0, True, 1), "residual_scale": (0, False, None)}
# files of the example itself in a run folder (the trainer's are RUN_FILES)
RUN_JSON = "run.json"
REPORT_FILES = ("curves.png", "compare.png", "compare.txt")


def build_parser():
    d = DEFAULTS
    p = argparse.ArgumentParser(
        prog="train_cifar_scaled.py", argument_default=argparse.SUPPRESS,
        description="Train a scaled Inception-v4 / Inception-ResNet on CIFAR-10 (synthetic shapes when CIFAR-10\n"
                    "is unavailable) with the paper's recipe: RMSProp (decay 0.9, eps 1.0, momentum 0.9), lr\n"
                    "decayed x0.94 every 2 epochs, gradient clipping, evaluation with a moving average of the weights.\n"
                    "The default run takes about 4 minutes on 2 CPU cores.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Outputs: OUT/metrics.jsonl (per epoch), OUT/last.npz (checkpoint), OUT/best.npz (best weights), "
               "OUT/curves.png;\n--model compare adds OUT/compare.png and OUT/compare.txt. "
               "Ctrl-C saves a checkpoint; --resume continues it.")
    g = p.add_argument_group("model")
    g.add_argument("--model", choices=list(MODELS) + ["compare"],
                   help=f"network to train, or 'compare' to train --compare-models one after another under the same "
                        f"budget and plot them (default {d['model']})")
    g.add_argument("--compare-models", metavar="A,B,...",
                   help=f"models for --model compare (default {d['compare_models']})")
    g.add_argument("--width", type=float, help=f"filter-count multiplier (default {d['width']})")
    g.add_argument("--blocks", metavar="A,B,C", help=f"repeats of the A, B, C blocks (default {d['blocks']})")
    g.add_argument("--dropout", type=float, help=f"dropout before the classifier (default {d['dropout']})")
    g.add_argument("--residual-scale", type=float, metavar="S",
                   help="scale of every residual branch of the Inception-ResNets (default: the paper's "
                        "0.17 / 0.10 / 0.20 for the A / B / C blocks)")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, help=f"epochs (default {d['epochs']})")
    g.add_argument("--batch-size", type=int, help=f"images per step (default {d['batch_size']})")
    g.add_argument("--lr", type=float, help=f"initial learning rate (default {d['lr']}; the paper: 0.045)")
    g.add_argument("--optimizer", choices=["rmsprop", "sgd"], help=f"(default {d['optimizer']})")
    g.add_argument("--rmsprop-eps", type=float, help=f"RMSProp epsilon, inside the square root (default {d['rmsprop_eps']})")
    g.add_argument("--momentum", type=float, help=f"(default {d['momentum']})")
    g.add_argument("--lr-decay", type=float, help=f"learning-rate factor per decay period (default {d['lr_decay']})")
    g.add_argument("--lr-decay-epochs", type=float, help=f"epochs per decay period (default {d['lr_decay_epochs']})")
    g.add_argument("--weight-decay", type=float, help=f"L2 on conv/linear weights (default {d['weight_decay']})")
    g.add_argument("--label-smoothing", type=float, help=f"(default {d['label_smoothing']}; 0 turns it off)")
    g.add_argument("--clip", type=float, help=f"global gradient-norm clipping threshold (default {d['clip']}; 0: off)")
    g.add_argument("--ema-decay", type=float,
                   help=f"decay of the parameter average used for evaluation (default {d['ema_decay']}; 0: evaluate "
                        "the raw weights)")
    g.add_argument("--no-ema-bn", dest="ema_bn", action="store_false",
                   help="average the parameters only, not the BN running statistics")
    g.add_argument("--no-augment", dest="augment", action="store_false",
                   help="no random crop and flip")
    g.add_argument("--seed", type=int, help=f"seeds weights, data order, augmentation, dropout (default {d['seed']})")
    g.add_argument("--max-steps", type=int, help="stop after this many steps (a checkpoint is saved)")
    g.add_argument("--sync-bn", action="store_true",
                   help="under mpiexec: batch norm uses the statistics of the global batch over all processes "
                        "(default: each process its own batch's)")
    g = p.add_argument_group("data")
    g.add_argument("--subset", type=int, metavar="N",
                   help=f"train on the first N training images (default {d['subset']}; 0: all); more than the data "
                        "set holds (cifar10 and synthetic 50,000, fashion-mnist 60,000) is refused, and where a "
                        "copy of the data set holds fewer, all of them are used (one line says so)")
    g.add_argument("--test-subset", type=int, metavar="N",
                   help=f"evaluate on the first N test images (default {d['test_subset']}; 0: all); at most "
                        "10,000, the same rules as --subset")
    g.add_argument("--dataset", choices=data.DATASETS,
                   help=f"data set (default {d['dataset']}; fashion-mnist: 28x28 gray padded to 32x32, channel x3; "
                        "one that is unavailable at the default location falls back to synthetic)")
    g.add_argument("--data-dir", help="folder holding cifar-10-batches-py/ or cifar-10-python.tar.gz, or "
                                      "Fashion-MNIST's IDX files (default $MINCEPTION_DATA or ~/.cache/minception; "
                                      "Fashion-MNIST is also found in Debian's /usr/share/datasets/fashion-mnist); "
                                      "a folder you name must hold the data set (or receive the download)")
    g.add_argument("--synthetic", action="store_true", help="the same as --dataset synthetic")
    g.add_argument("--no-download", dest="download", action="store_false", help="never try to download the data set")
    g = p.add_argument_group("run")
    g.add_argument("--out", metavar="DIR", help="run folder (default runs/<model>)")
    g.add_argument("--device", choices=["cpu", "cuda"], help=f"(default {d['device']})")
    g.add_argument("--kernels", choices=["reference", "fast"],
                   help="kernel tier: 'reference' runs the readable NumPy kernels, 'fast' Numba (CPU) / CuPy (GPU); "
                        "the same numbers (default: $MINCEPTION_KERNELS, else fast)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    g.add_argument("--overwrite", action="store_true",
                   help="start a new run in an --out folder that holds one (the old run's files stay as they were "
                        "until the new run writes its first checkpoint; nothing is deleted first)")
    g.add_argument("--checkpoint-every", type=int, help=f"steps between checkpoints (default {d['checkpoint_every']})")
    g.add_argument("--log-every", type=int, help=f"steps between train_log.jsonl lines (default {d['log_every']})")
    g.add_argument("--check-every", type=int,
                   help="read (and check for NaN) the training loss every this many steps (default: every step on "
                        "the CPU; on the GPU every --log-every steps, since each read makes the CPU wait for the GPU)")
    g.add_argument("--progress", dest="progress", action="store_true", help="always show progress bars")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="never show progress bars")
    return p


def parse_blocks(text):
    try:
        blocks = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        blocks = ()
    if len(blocks) != 3 or min(blocks) < 0:
        raise ValueError(f"--blocks must be three non-negative integers A,B,C, got {text!r}")
    return blocks


def _flag(key):
    return "--" + key.replace("_", "-")


def check_config(cfg):
    """Raise ValueError, naming the flag, for settings that cannot work (before anything is read or written)."""
    parse_blocks(cfg["blocks"])
    if cfg["model"] == "compare":
        names = cfg["compare_models"].split(",")
        unknown = [n for n in names if n not in MODELS]
        if unknown or len(names) < 1:
            raise ValueError(f"--compare-models: unknown {unknown}; choose from {', '.join(MODELS)}")
    for key, low in INT_MINIMUMS.items():
        if cfg[key] is not None and cfg[key] < low:
            raise ValueError(f"{_flag(key)} must be >= {low}, got {cfg[key]}")
    for key, (low, low_allowed, high) in REAL_RANGES.items():
        value = cfg[key]
        if value is None:                    # only --residual-scale may be unset (the paper's scales)
            continue
        above = value >= low if low_allowed else value > low
        if not (math.isfinite(value) and above and (high is None or value < high)):
            bounds = f"{'[' if low_allowed else '('}{low}, {'inf' if high is None else high})"
            raise ValueError(f"{_flag(key)} must be a finite number in {bounds}, got {value}")
    if cfg["resume"] and cfg["overwrite"]:
        raise ValueError("--resume continues the run in --out and --overwrite replaces it: give one of them")
    check_data_flags(cfg)
    check_memory(cfg)


#: (training images, test images) of each data set: --subset and --test-subset may not ask for more
DATASET_SIZES = {"cifar10": (50000, 10000), "fashion-mnist": (60000, 10000), "synthetic": (50000, 10000)}


def check_data_flags(cfg):
    """Raise ValueError for --data-dir, --subset, --test-subset and --batch-size values no data set can serve:
    an empty folder name (it meant the current folder, and a download there), more images than the data set has,
    a batch larger than the training images."""
    if cfg["data_dir"] is not None and not str(cfg["data_dir"]).strip():
        raise ValueError(f"--data-dir {cfg['data_dir']!r}: expected a folder holding the data set (leave the flag "
                         "out for the default location)")
    name = "synthetic" if cfg["synthetic"] else cfg["dataset"]
    sizes = DATASET_SIZES.get(name, DATASET_SIZES["cifar10"])
    for key, most, what in (("subset", sizes[0], "training"), ("test_subset", sizes[1], "test")):
        if cfg[key] and cfg[key] > most:
            raise ValueError(f"{_flag(key)} {cfg[key]}: {name} has {most:,} {what} images; give at most {most} "
                             "(0 takes them all)")
    processes = cfg.get("processes", 1)
    batch, images = cfg["batch_size"] * processes, cfg["subset"] or sizes[0]
    if batch > images:
        per = f" x {processes} processes" if processes > 1 else ""
        raise ValueError(f"--batch-size {cfg['batch_size']}: " + (
            f"--subset {cfg['subset']} is smaller than one batch of {cfg['batch_size']}{per}" if cfg["subset"] else
            f"one batch{per} is more than the {images:,} training images of {name}"))


def _bytes(n):
    return f"{n / 2 ** 30:.3g} GiB" if math.isfinite(n) and n < 1e30 else "1e30 bytes"


def check_memory(cfg):
    """Raise ValueError when training the network the settings describe cannot fit in this machine's memory.

    ``--width 1e300`` or ``--blocks 100000000,1,1`` pass every range check, and building such a network would
    fail only after minutes (a MemoryError at gigabytes). The estimate (``models.footprint``) builds the network
    at a small width and scales the count, in milliseconds, and errs low: what it refuses cannot fit."""
    names = cfg["compare_models"].split(",") if cfg["model"] == "compare" else [cfg["model"]]
    blocks = parse_blocks(cfg["blocks"])
    extra = {}
    if cfg["residual_scale"] is not None:
        extra["residual_scale"] = (cfg["residual_scale"],) * 3
    memory = machine_memory()
    for name in names:
        kw = {k: v for k, v in extra.items() if name != "inception_v4"}

        def build(width, blocks, name=name, kw=kw):
            return MODELS[name](num_classes=10, width=width, blocks=blocks, small_input=True, **kw)

        try:
            footprint = estimate(build, cfg["width"], blocks)
        except (ValueError, TypeError) as e:          # a block count the model refuses
            raise ValueError(f"--blocks {shorten(cfg['blocks'], 40)}: {name}: {e}") from None
        on_host = (footprint.parameters * 4 if cfg["device"] == "cuda"      # the weights pass through the host
                   else footprint.training_bytes(cfg["batch_size"]))
        if memory is None or on_host <= memory:
            continue
        # name the flag that makes it too large: the batch when one image would fit, else the width or the blocks
        grown = (cfg["width"] / 0.125) * (cfg["width"] / 0.125)
        flag = (f"--batch-size {cfg['batch_size']}" if footprint.training_bytes(1) <= memory else
                f"--width {cfg['width']:g}" if grown >= sum(blocks) / 3 else f"--blocks {shorten(cfg['blocks'], 24)}")
        raise ValueError(f"{flag}: {name} needs {_bytes(on_host)} or more, this machine has {_bytes(memory)} of memory")


def check_out_folder(cfg):
    """Raise ValueError when ``--out`` cannot take this run: it is a file, or it holds a run and neither
    ``--resume`` nor ``--overwrite`` was given."""
    out = cfg["out"]
    if not str(out).strip():
        raise ValueError(f"--out {out!r}: expected a folder for the run (leave the flag out for runs/<model>)")
    if os.path.lexists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {shorten(out, 80)} is {'a file' if os.path.isfile(out) else 'not a folder'}, "
                         "not a folder")
    above = os.path.dirname(os.path.abspath(out))
    while not os.path.lexists(above) and os.path.dirname(above) != above:
        above = os.path.dirname(above)
    if not os.path.isdir(above):          # --out a/file/run: the folder cannot be made
        raise ValueError(f"--out {shorten(out, 60)}: {shorten(above, 60)} is a file, not a folder")
    if cfg["resume"] or cfg["overwrite"]:
        return
    found = existing_run_files(out, RUN_FILES + (RUN_JSON,))
    found += [os.path.join(name, f) for name in MODELS for f in existing_run_files(os.path.join(out, name))]
    if found:
        raise ValueError(f"{out} already holds a run ({', '.join(found[:4])}{', ...' if len(found) > 4 else ''}); "
                         "continue it with --resume, start again there with --overwrite, or choose another --out")


# ------------------------------------------------------------------------------------------------ data ---
class DataDirError(ValueError):
    """A data folder the user named holds no readable CIFAR-10."""


def load_data(cfg, say):
    """(train ImageSet, test ImageSet, description, mean, std) following --dataset / --data-dir / --subset.

    A folder the user named (--data-dir or $MINCEPTION_DATA) that yields no readable data set raises DataDirError;
    only the default location falls back to the synthetic set.
    """
    n_train, n_test = cfg["subset"] or 0, cfg["test_subset"] or 0
    name = "synthetic" if cfg["synthetic"] else cfg["dataset"]
    loaded = None
    if name != "synthetic":
        named = cfg["data_dir"] or os.environ.get("MINCEPTION_DATA")
        try:
            loaded = data.load_dataset(name, cfg["data_dir"], download_missing=cfg["download"], timeout=10.0)
        except (data.DatasetError, OSError) as e:
            what = f"{name} could not be read: " if isinstance(e, (data.CorruptDataset, OSError)) else ""
            if named:
                raise DataDirError(f"{what}{e} (the data folder {named} was named explicitly; use --synthetic "
                                   "for the synthetic set)") from None
            say(f"{what}{e}. Training on the synthetic shapes set instead.")
    if loaded is None:
        # the synthetic set is generated at the size needed (about 0.4 ms per image); its mean/std are its own
        loaded = data.load_dataset("synthetic", synthetic_sizes=(n_train or 10000, n_test or 2000))
    train, test, source, mean, std = loaded
    # a copy of the data set with fewer images than --subset asks for (the flag's check knows the full sizes)
    if n_train > len(train):
        say(f"--subset {n_train}: {source} has {len(train):,} training images here; using all of them")
    if n_test > len(test):
        say(f"--test-subset {n_test}: {source} has {len(test):,} test images here; using all of them")
    if n_train:
        train = train.subset(slice(0, min(n_train, len(train))))
    if n_test:
        test = test.subset(slice(0, min(n_test, len(test))))
    return train, test, source, mean, std


# ------------------------------------------------------------------------------------------------- run ---
def recipe_of(cfg):
    """The ``Recipe`` the settings ``cfg`` describe: ``RECIPE`` with the recipe flags' values (0 turns clipping
    and the moving average off)."""
    values = {field: cfg[flag] for flag, field in RECIPE_FLAGS.items()}
    for flag in OFF_AT_ZERO:
        values[RECIPE_FLAGS[flag]] = cfg[flag] or None
    return RECIPE.replace(**values)


def build_trainer(name, run_dir, cfg, train, test, mean, std, say, comm=None, callbacks=()):
    """Model, optimizer, schedule, EMA, loaders and the Trainer for one model.

    With ``comm`` of several processes: data-parallel (rank 0 alone evaluates and writes ``run_dir``)."""
    comm = comm or distributed.Communicator()
    recipe = recipe_of(cfg)
    seed = cfg["seed"]
    nn.init.manual_seed(seed)
    extra = {}
    if cfg["residual_scale"] is not None and name != "inception_v4":
        extra["residual_scale"] = (cfg["residual_scale"],) * 3
    model = MODELS[name](num_classes=train.num_classes, width=cfg["width"], blocks=parse_blocks(cfg["blocks"]),
                         small_input=True, dropout=recipe.dropout, **extra)
    model.fuse()                      # sibling branches' 1x1 convs as one conv: the same numbers, faster (nn.fusion)
    model.to(cfg["device"])           # before the optimizer and EMA, so that their arrays live there too
    # under mpiexec: same start on every process, sharded dropout, and (--sync-bn) synchronised batch norms, the
    # fused heads' included
    dp = distributed.DataParallel(model, comm, sync_batch_norm=cfg["sync_bn"]) if comm.size > 1 else None
    train_loader = recipe.train_loader(train, mean, std, seed=seed, shard=(comm.rank, comm.size))
    test_loader = data.DataLoader(test, 250, shuffle=False, mean=mean, std=std) if comm.is_main else None
    # the average covers the BN running statistics too (--no-ema-bn: the weights only; see the Recipe)
    main = comm.is_main
    return Trainer(model, recipe.optimizer(model), train_loader, test_loader, epochs=cfg["epochs"],
                   schedule=recipe.schedule(len(train_loader)), ema=recipe.ema(model),
                   label_smoothing=recipe.label_smoothing, clip_norm=recipe.clip_norm,
                   run_dir=run_dir if main else None, name=name, device=cfg["device"],
                   checkpoint_every=cfg["checkpoint_every"], log_every=cfg["log_every"], max_steps=cfg["max_steps"],
                   progress=cfg["progress"] if main else False, config=cfg, print_fn=say if main else None,
                   distributed=dp, check_every=cfg["check_every"], callbacks=callbacks)


def resolve_config(given, processes=1):
    """The run's settings: defaults + command line, or, with --resume, the saved run's + allowed changes.

    ``processes``: the number of data-parallel processes of a new run (a resumed run keeps its saved number)."""
    cfg = dict(DEFAULTS)
    cfg.update(given)
    if cfg["out"] is None:
        cfg["out"] = os.path.join("runs", "compare" if cfg["model"] == "compare" else cfg["model"])
    if not cfg["resume"]:
        cfg["processes"] = processes
        return cfg
    path = os.path.join(cfg["out"], RUN_JSON)
    if not os.path.lexists(path):
        raise ValueError(f"--resume: no run to continue in {cfg['out']} (no run.json); give the run's --out folder")
    saved = read_run_json(path)
    conflicts = [k for k, v in given.items() if k not in RESUME_MAY_CHANGE and saved.get(k) != v]
    if conflicts:
        what = ", ".join(f"--{k.replace('_', '-')} {shorten(given[k], 30)} (saved: {shorten(saved.get(k), 30)})"
                         for k in conflicts)
        raise ValueError(f"--resume continues the run in {cfg['out']} with its saved settings; these differ: {what}. "
                         "Start a new run in another --out folder instead.")
    merged = dict(DEFAULTS)
    merged["processes"] = 1                  # runs saved before data parallelism had one process
    merged.update(saved)
    merged.update({k: v for k, v in given.items() if k in RESUME_MAY_CHANGE})
    merged["out"], merged["resume"] = cfg["out"], True
    return merged


def _setting_checks():
    """``{setting: (check, expected)}`` for the settings ``run.json`` holds, from the parser's own flags: the type
    and choices each flag takes (None where its default is None), so the file is held to what a command line
    could have given."""
    checks = {"processes": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                            "an integer >= 1")}
    for action in build_parser()._actions:
        key = action.dest
        if key not in DEFAULTS or key in checks:
            continue
        if action.choices is not None:
            choices = list(action.choices)
            listed = f"one of {', '.join(choices)}"
            check = lambda v, c=choices: isinstance(v, str) and v in c             # noqa: E731
            expected = listed if len(listed) <= 60 else f"a {_flag(key)} choice ({shorten(choices, 50)})"
        elif action.nargs == 0:                        # store_true / store_false
            check, expected = (lambda v: isinstance(v, bool)), "true or false"
        elif action.type is int:
            check, expected = (lambda v: isinstance(v, int) and not isinstance(v, bool)), "an integer"
        elif action.type is float:
            check, expected = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)), "a number"
        else:
            check, expected = (lambda v: isinstance(v, str) and len(v) <= 4096), "text"
        if DEFAULTS[key] is None:
            check, expected = (lambda v, c=check: v is None or c(v)), expected + " or null"
        checks[key] = check, expected
    return checks


def read_run_json(path):
    """The settings a run folder's ``run.json`` holds, checked field by field as the command line's would be.

    The folder is input like any other (edited, damaged, another program's): a file that is not a regular file,
    too large, not UTF-8, not JSON (nesting a million deep included), not an object, or a field of the wrong type
    or out of range (``"epochs": "4"``, an unknown model) raises ``RunFileError`` naming the file and the field,
    instead of a traceback from wherever the value would have been used. Fields this version does not know are
    left out (a newer version's), if they hold plain values."""
    raw = read_text(path, "run.json", 1 << 20)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RunFileError(f"{path}: not UTF-8 text (byte {e.start + 1})") from None
    saved = parse_json(text, path)
    if not isinstance(saved, dict):
        raise RunFileError(f"{path}: expected the settings of a run (a JSON object), got {shorten(saved)}")
    checks, kept = _setting_checks(), {}
    for key, value in saved.items():
        if isinstance(value, (dict, list)):
            raise RunFileError(f"{path}, field {shorten(key)}: expected a plain value, got {shorten(value)}")
        if key in checks:
            check, expected = checks[key]
            if not check(value):
                raise RunFileError(f"{path}, field {key!r}: expected {expected}, got {shorten(value)}")
            kept[key] = value
    alone = {**DEFAULTS, "processes": 1, **kept}
    alone.update(out=os.path.dirname(path) or ".", resume=False, overwrite=False)
    try:                                # ranges and combinations, as for the command line
        check_config(alone)
    except ValueError as e:
        raise RunFileError(f"{path}: settings no run can have: {e}") from None
    return kept


def check_run_logs(cfg):
    """Raise ``RunFileError`` when a log of the run to resume is damaged (``metrics.jsonl``, ``train_log.jsonl``:
    a line that is not a flat JSON object, not UTF-8, or a field of the wrong type or range), naming the file, the
    line and the field; on rank 0, before anything changes, so that every process of a job stops with it."""
    names = cfg["compare_models"].split(",") if cfg["model"] == "compare" else [cfg["model"]]
    folders = [os.path.join(cfg["out"], n) for n in names] if cfg["model"] == "compare" else [cfg["out"]]
    for folder in folders:
        read_jsonl(os.path.join(folder, METRICS), METRICS_FIELDS)
        read_jsonl(os.path.join(folder, TRAIN_LOG), TRAIN_LOG_FIELDS)


def check_processes(cfg, comm):
    """Raise ValueError for settings that cannot work with ``comm.size`` processes."""
    if cfg["processes"] != comm.size:
        raise ValueError(f"--resume: the run in {cfg['out']} was trained with {cfg['processes']} process(es), this "
                         f"job has {comm.size}; resume it with mpiexec -n {cfg['processes']}")
    if comm.size > 1 and cfg["check_every"] not in (None, 1):
        raise ValueError(f"--check-every {cfg['check_every']}: under mpiexec the processes agree on every step's loss, "
                         "so it must be 1 (or left out)")
    if comm.size > 1 and cfg["model"] == "compare":
        raise ValueError("--model compare is not available under mpiexec; train the models one at a time")


def result_files(out, dirs):
    """What the run folder holds now, described (files that were not written are not listed)."""
    described = {"metrics.jsonl": "per epoch", "last.npz": "checkpoint", "best.npz": "best weights"}
    listed = []
    for name, what in described.items():
        holders = [n for n, d in dirs.items() if os.path.exists(os.path.join(d, name))]
        if holders:
            where = "<model>/" if any(d != out for d in dirs.values()) else ""
            listed.append(f"{where}{name} ({what})")
    listed += [name for name in REPORT_FILES if os.path.exists(os.path.join(out, name))]
    return listed or ["no files yet"]


def _quiet(*args, **kwargs):
    """``print`` on the ranks other than 0."""


def _error(message, say=print):
    say(f"train_cifar_scaled.py: error: {message}", file=sys.stderr)
    return 2


class RunJson:
    """``run.json`` (the run's settings, what ``--resume`` reads), written at the run's first checkpoint.

    A trainer callback (``on_checkpoint``): written earlier, an ``--overwrite`` killed or failing before its
    first checkpoint would leave the new settings beside the old run's checkpoint, and the old run could no longer
    be resumed. Compare mode shares one between its models: the first checkpoint of the first one writes it."""

    def __init__(self, path, cfg, written=False):
        self.path, self.written = path, written
        self.settings = {k: v for k, v in cfg.items() if k not in ("resume", "overwrite")}

    def on_checkpoint(self, trainer, checkpoint):
        if not self.written:
            text = json.dumps(self.settings, indent=1).encode()
            atomic_write(self.path, lambda f: f.write(text))
            self.written = True


def _os_error(error):
    """The one line for a file the operating system would not write (or read): a full disk, a read-only folder,
    no permission. Files are replaced whole (``atomic_write``), so the last checkpoint is as it was."""
    name = errno.errorcode.get(error.errno, "")
    where = os.fspath(error.filename) if error.filename is not None else None
    text = f"{where}: {error.strerror or error}" if where else f"{error.strerror or error}"
    last = os.path.join(os.path.dirname(where), "last.npz") if where else None
    kept = ("; the last checkpoint there (last.npz) is intact: --resume continues from it"
            if last and os.path.isfile(last) else "")
    return _error(f"{text}{f' [{name}]' if name else ''}{kept}")


def main(argv=None):
    """Run the program; exit status as the module docstring says. A file the operating system refuses to write
    (a full disk, a read-only folder, no permission) is one line and exit 2, not a traceback."""
    try:
        return _main(argv)
    except OSError as e:
        return _os_error(e)


def _main(argv=None):
    args = build_parser().parse_args(argv)
    given = vars(args)
    comm = distributed.init()           # rank 0 of 1 unless started by mpiexec
    say = print if comm.is_main else _quiet
    try:                                # under mpiexec: every process was given the same flags and environment
        distributed.agree_on_settings(comm, {**{_flag(k): v for k, v in given.items()},
                                             **distributed.environment_settings(_GIVEN_ENVIRONMENT)})
    except ValueError as e:
        return _error(e, say)

    def settings():
        cfg = resolve_config(given, processes=comm.size)
        check_processes(cfg, comm)
        check_config(cfg)
        check_out_folder(cfg)
        if cfg["resume"]:
            check_run_logs(cfg)
        return cfg

    try:
        # rank 0 reads run.json (--resume) and looks into --out; every rank gets its settings, or the same error
        cfg = comm.on_main(settings)
    except ValueError as e:
        return _error(e, say)
    try:
        check_device(cfg["device"], require=True)      # CuPy missing, or no usable GPU: one line saying which
        device_error = None
    except GPUUnavailableError as e:
        device_error = e
    if comm.any(device_error is not None):             # every process needs its GPU: all stop if one has none
        return _error(device_error or "--device cuda: another process of the job has no usable GPU", say)
    if cfg["device"] == "cuda" and comm.size > 1:
        distributed.use_local_gpu(comm)                # the processes of a machine take one GPU each
    if cfg["kernels"] is not None:
        ops.kernels.use(cfg["kernels"])
    say(f"kernels: {ops.kernels.current()}")
    out = cfg["out"]
    t_start = time.perf_counter()

    # one process per machine first (it may download the data set), then the others read what it left
    first = comm.local_rank == 0
    if not first:
        comm.barrier()
    try:
        loaded, data_error = load_data(cfg, say), None
    except DataDirError as e:
        loaded, data_error = None, e
    if first:
        comm.barrier()
    if comm.any(data_error is not None):               # all stop together, even if one process lacks the data
        return _error(data_error or "another process of the job found no data set in its data folder", say)
    train, test, source, mean, std = loaded
    say(f"data: {source}, {len(train)} training and {len(test)} test images")
    if len(train) < cfg["batch_size"] * comm.size:     # a copy of the data set smaller than one batch
        per = f" x {comm.size} processes" if comm.size > 1 else ""
        return _error(f"--batch-size {cfg['batch_size']}: one batch{per} is more than the {len(train):,} training "
                      f"images of {source} here", say)
    if comm.is_main:                                   # rank 0 alone writes the run folder
        os.makedirs(out, exist_ok=True)
        remove_stale_temp_files(out, (RUN_JSON,) + REPORT_FILES)
    # run.json is written with the new run's first checkpoint, not before: until then an --overwrite leaves the
    # old run's settings (and so the old run) as they were
    run_json = RunJson(os.path.join(out, RUN_JSON), cfg, written=cfg["resume"])

    names = cfg["compare_models"].split(",") if cfg["model"] == "compare" else [cfg["model"]]
    params = {}

    def make(name, run_dir):
        trainer = build_trainer(name, run_dir, cfg, train, test, mean, std, say, comm, callbacks=[run_json])
        params[name] = trainer.model.num_parameters()
        return trainer

    try:
        if cfg["model"] == "compare":
            results = compare.run_comparison(names, make, out, resume=cfg["resume"], print_fn=say)
        else:
            trainer = make(names[0], out)
            if cfg["resume"]:
                path = trainer.resume()
                say(f"resuming {path}: epoch {trainer.epoch + 1}, step {trainer.step}")
            batch = (f"batch {cfg['batch_size']}" if comm.size == 1 else
                     f"global batch {cfg['batch_size'] * comm.size} = {comm.size} processes x {cfg['batch_size']}"
                     + (", synchronised batch norm" if cfg["sync_bn"] else ", per-process batch norm"))
            say(f"model: {names[0]} width {cfg['width']} blocks {cfg['blocks']}: {params[names[0]]:,} parameters")
            say(f"training: {cfg['epochs']} epochs of {trainer.steps_per_epoch} steps ({batch})")
            results = {names[0]: trainer.fit()}
    except CheckpointError as e:                       # rank 0 read the checkpoint: every rank has its error
        return _error(f"--resume: {e}", say)
    except RunFileError as e:                          # a log of the run folder, damaged after the first check
        return _error(f"--resume: {e}", say)
    except NonFiniteLossError as e:                    # the ranks take the same steps: all stop here together
        say(f"train_cifar_scaled.py: {e}", file=sys.stderr)
        return 1
    if not comm.is_main:            # rank 0 reports; the others only say how they ended
        statuses = {r.status for r in results.values()}
        return 130 if "interrupted" in statuses else 0

    # ---- report
    dirs = {n: (os.path.join(out, n) if cfg["model"] == "compare" else out) for n in results}
    histories = {n: {"epochs": read_jsonl(os.path.join(d, "metrics.jsonl")),
                     "steps": read_jsonl(os.path.join(d, "train_log.jsonl"))} for n, d in dirs.items()}
    plot_path = os.path.join(out, "compare.png" if cfg["model"] == "compare" else "curves.png")
    title = (f"{source}, {len(train)} train / {len(test)} test images, width {cfg['width']}, blocks {cfg['blocks']}, "
             f"batch {cfg['batch_size']}{f' x {comm.size} processes' if comm.size > 1 else ''}, lr {cfg['lr']}")
    if any(h["epochs"] for h in histories.values()):
        try:
            compare.plot_comparison(histories, plot_path, title=title, chance=1.0 / train.num_classes)
        except ImportError:
            say("matplotlib is not installed; no plot written")
    elif os.path.exists(plot_path):
        os.remove(plot_path)            # an earlier run's plot: this run has no finished epoch to draw
    table = compare.comparison_table(histories, params)
    say("")
    say(table)
    if cfg["model"] == "compare":
        faster = compare.faster_model(histories)
        verdict = ("" if faster is None else
                   f"\nfirst to reach the common target: {faster[0]} after {faster[1]:.0f} s of training")
        atomic_write(os.path.join(out, "compare.txt"), lambda f: f.write((title + "\n\n" + table + verdict + "\n").encode()))
        if verdict:
            say(verdict.strip())
    say(f"\nresults in {os.path.abspath(out)}/  [{time.perf_counter() - t_start:.0f} s]")
    say("  " + ", ".join(result_files(out, dirs)))
    interrupted = [r for r in results.values() if r.status == "interrupted"]
    if interrupted:
        say(interrupted[0].message + "; continue with --resume" + (f" --out {out}" if "out" in given else ""))
        return 130
    stopped = [r for r in results.values() if r.status == "stopped"]
    if stopped:
        say(stopped[0].message)
    return 0


if __name__ == "__main__":
    # under mpiexec: an exception on one process ends all of them (with its message) instead of a hang
    sys.exit(distributed.run_or_abort(main))
