"""Training: the recipe (``Recipe``), one step (``loop.py``), the run around it (``Trainer``), atomic checkpoints,
the metrics log, the progress bar, model comparison.

    from minception.train import Recipe, Trainer
    recipe = Recipe.scaled()            # the paper's optimizer and schedule, this project's learning rate
    train_loader = recipe.train_loader(train_images, mean, std, seed=0)
    trainer = Trainer(model, recipe.optimizer(model), train_loader, test_loader, epochs=10,
                      schedule=recipe.schedule(len(train_loader)), ema=recipe.ema(model),
                      label_smoothing=recipe.label_smoothing, clip_norm=recipe.clip_norm, run_dir="runs/demo",
                      name="inception_resnet_v2")
    result = trainer.fit()          # or trainer.resume(); trainer.fit() to continue a run exactly

Each run folder holds ``metrics.jsonl`` (one line per epoch), ``train_log.jsonl`` (one line every few steps),
``last.npz`` (the whole training state) and ``best.npz`` (the weights of the best epoch).
"""
from .checkpoint import CheckpointError, atomic_write, load_checkpoint, save_checkpoint, save_weights
from .loop import StepResult, evaluate, train_step
from .metrics import MetricsLog, RunningMean, Tally, read_jsonl
from .nonfinite import NonFiniteLossError
from .progress import ProgressBar
from .recipe import Recipe
from .run_folder import BEST, LAST, METRICS, RUN_FILES, TRAIN_LOG, existing_run_files
from .trainer import FitResult, Trainer

__all__ = ["Recipe", "Trainer", "FitResult", "NonFiniteLossError", "train_step", "evaluate", "StepResult",
           "save_checkpoint", "load_checkpoint", "save_weights", "atomic_write", "CheckpointError", "MetricsLog",
           "RunningMean", "Tally", "read_jsonl", "ProgressBar", "LAST", "BEST", "METRICS", "TRAIN_LOG", "RUN_FILES",
           "existing_run_files"]
