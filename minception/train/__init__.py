"""Training: the loop (``Trainer``), atomic checkpoints, the metrics log, the progress bar, model comparison.

    from minception.train import Trainer
    trainer = Trainer(model, opt, train_loader, test_loader, epochs=10, schedule=sched, ema=ema,
                      label_smoothing=0.1, clip_norm=2.0, run_dir="runs/demo", name="inception_resnet_v2")
    result = trainer.fit()          # or trainer.resume(); trainer.fit() to continue a run exactly

Each run folder holds ``metrics.jsonl`` (one line per epoch), ``train_log.jsonl`` (one line every few steps),
``last.npz`` (the whole training state) and ``best.npz`` (the weights of the best epoch).
"""
from .checkpoint import CheckpointError, atomic_write, load_checkpoint, save_checkpoint, save_weights
from .metrics import MetricsLog, RunningMean, read_jsonl
from .progress import ProgressBar
from .trainer import BEST, LAST, METRICS, TRAIN_LOG, FitResult, NonFiniteLossError, Trainer

__all__ = ["Trainer", "FitResult", "NonFiniteLossError", "save_checkpoint", "load_checkpoint", "save_weights",
           "atomic_write", "CheckpointError", "MetricsLog", "RunningMean", "read_jsonl", "ProgressBar",
           "LAST", "BEST", "METRICS", "TRAIN_LOG"]
