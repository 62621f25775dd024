"""The training step the benchmarks time, and the networks they build: one definition for all of them.

``bench/train_step.py``, ``memory.py``, ``profile_step.py``, ``data_parallel.py`` and ``device_check.py`` time or
measure ``minception.train.loop.train_step``, the step the Trainer takes, with the optimizer and loss of a
``Recipe``: ``BENCH_RECIPE`` (``Recipe.bare()``: the paper's RMSProp, decay 0.9, eps 1.0, momentum 0.9, at lr
0.01, on plain softmax cross-entropy; no clipping, average, smoothing or weight decay), or the training example's
``Recipe.scaled()`` where a benchmark says so. ``bench_step`` runs it as the benchmarks' hand-written steps did
(forward and loss, zero the gradients, backward, update), so that timings stay comparable with earlier ones.
``bench/torch_models.py`` builds the PyTorch twins of ``build_minception``'s networks.

Nothing from minception is imported until a function is called: the parent processes of the benchmarks, and the
PyTorch side's subprocesses, import this file without the engine.
"""

NETWORKS = ["inception_v4", "inception_resnet_v1", "inception_resnet_v2", "inception_resnet_v2_released"]
#: the scaled benchmark networks: width 0.25, blocks (2, 2, 2), 32x32 inputs, 10 classes
SCALED = dict(num_classes=10, width=0.25, blocks=(2, 2, 2), small_input=True)
#: the learning rate of the benchmarks' steps (the PyTorch twins' too)
BENCH_LR = 0.01


def bench_recipe(name="bare"):
    """The ``Recipe`` of a benchmark step: "bare" (``Recipe.bare(lr=BENCH_LR)``, the default) or "scaled" (the
    training example's, ``Recipe.scaled()``, at ``BENCH_LR``)."""
    from minception.train import Recipe
    if name == "bare":
        return Recipe.bare(lr=BENCH_LR)
    if name == "scaled":
        return Recipe.scaled(lr=BENCH_LR)
    raise ValueError(f"bench_recipe: name must be 'bare' or 'scaled', got {name!r}")


def build_minception(name, **kwargs):
    """Our network ``name`` (one of ``NETWORKS``) built with ``kwargs`` and fused (``model.fuse()``), as the
    training example runs it."""
    from minception import models
    if name == "inception_resnet_v2_released":
        return models.inception_resnet_v2(variant="released", **kwargs).fuse()
    return {"inception_v4": models.inception_v4, "inception_resnet_v1": models.inception_resnet_v1,
            "inception_resnet_v2": models.inception_resnet_v2}[name](**kwargs).fuse()


def bench_step(model, optimizer, x, y, recipe, ema=None, **options):
    """``loop.train_step`` on the batch ``x`` (N, C, H, W) Tensor, ``y`` (N,) labels, with ``recipe``'s loss and
    clipping, as the benchmarks time it: nothing is computed beyond what the update needs (``metrics=False``: no
    gradient norm unless clipping, no accuracy), and the gradients live until the next step's ``zero_grad``
    (``free_gradients=False``), as in the hand-written steps of earlier measurements. ``options``: ``sync``,
    ``average_gradients``, ``on_phase`` (see ``loop.train_step``). Returns its ``StepResult``."""
    from minception.train import loop
    return loop.train_step(model, optimizer, x, y, label_smoothing=recipe.label_smoothing,
                           clip_norm=recipe.clip_norm, ema=ema, metrics=False, free_gradients=False, **options)


class PhaseClock:
    """An ``on_phase`` that notes when each phase of a step ended: ``clock.at["backward"]`` (``perf_counter``
    seconds), or, with ``measure``, ``measure()``'s value then (e.g. the peak memory so far)."""

    def __init__(self, measure=None):
        import time
        self.measure = measure or time.perf_counter
        self.at = {}

    def __call__(self, phase):
        self.at[phase] = self.measure()
