"""The training recipe: every number of how the networks are trained, in one object, and the pieces built from it.

    recipe = Recipe.scaled()                       # this project's defaults (Recipe.paper(): the paper's values)
    optimizer = recipe.optimizer(model)            # RMSProp(decay 0.9, eps 1.0, momentum 0.9), weight decay 4e-5
    schedule = recipe.schedule(len(train_loader))  # lr x0.94 every 2 epochs
    ema = recipe.ema(model)                        # moving average of the weights and BN statistics, or None
    loop.train_step(model, optimizer, x, y, lr=schedule(step), label_smoothing=recipe.label_smoothing,
                    clip_norm=recipe.clip_norm, ema=ema)

Where each value comes from. The Inception-v4 paper (Szegedy et al. 2016), section 4, gives the optimizer and the
schedule: RMSProp with decay 0.9, eps 1.0 (TensorFlow's form, eps inside the square root; ``optim.RMSProp``) and
momentum 0.9, learning rate 0.045 decayed by 0.94 every two epochs, gradient clipping (no threshold given), and
evaluation with a running average of the parameters. Its Figure 9 (and Figure 15) keeps 0.8 of the activations
before the classifier: dropout 0.2. It gives no batch size, weight decay, label smoothing or clipping threshold;
those come from the Inception-v3 paper (Szegedy et al. 2015, sections 7-8: label smoothing 0.1, clipping at global
norm 2.0, batch 32) and TF-slim's Inception training (weight decay 4e-5 on the weights only, moving-average decay
0.9999, over the batch-norm running statistics too: averaged weights evaluated with the statistics of the latest
raw weights lost 20 points here). Random crop (padding 4) and flip are the usual CIFAR augmentation, not the
paper's ImageNet one.

``Recipe.scaled()`` (the defaults: the training example's, and the depth sweep's) differs from the paper in the
learning rate only: 0.02, measured on the scaled networks at batch 32 (0.045 was tuned for 20 replicas on
ImageNet; docs/performance.md, "Training runs").
``Recipe.bare()`` is the step the benchmarks time: the paper's RMSProp and plain cross-entropy, nothing else.
"""
import math
from dataclasses import asdict, dataclass, fields, replace

#: the update rules a recipe can name: the paper's RMSProp, or momentum SGD (its earlier experiments)
OPTIMIZERS = ("rmsprop", "sgd")


@dataclass(frozen=True)
class Recipe:
    """How a network is trained: optimizer, schedule, loss, clipping, averaging, regularisation, batch.

    The defaults are ``Recipe.scaled()``. Every field is checked when the recipe is made (and by ``replace``): a
    bad value raises ValueError (TypeError for a wrong type) naming the field.

    Fields (source in brackets; see the module docstring):
        lr: initial learning rate [paper 0.045; scaled 0.02, measured].
        lr_decay, lr_decay_epochs: the rate is multiplied by ``lr_decay`` every ``lr_decay_epochs`` epochs,
            staircase [paper: 0.94 every 2].
        optimizer_name: "rmsprop" [paper] or "sgd" (momentum SGD, Nesterov when momentum > 0).
        rmsprop_decay, rmsprop_eps: RMSProp's mean-square decay and eps, eps inside the root [paper 0.9, 1.0].
        momentum: [paper 0.9].
        weight_decay: L2 coefficient on conv and linear weights only (``optim.weights_only``) [TF-slim 4e-5].
        label_smoothing: of the training loss [Inception-v3 0.1].
        clip_norm: clip the global gradient norm to this; None: no clipping [Inception-v3 2.0].
        ema_decay: decay of the moving average of the weights used for evaluation; None: no average
            [TF-slim 0.9999, with TF's num_updates warm-up].
        ema_bn: the average also covers the batch-norm running statistics [TF-slim].
        dropout: before the classifier [paper 0.2, keep 0.8].
        batch_size: images per step (per process in data-parallel training) [Inception-v3 32].
        augment, crop_padding: random crop with this padding, then a random flip [the usual CIFAR one].
    """

    lr: float = 0.02
    lr_decay: float = 0.94
    lr_decay_epochs: float = 2.0
    optimizer_name: str = "rmsprop"
    rmsprop_decay: float = 0.9
    rmsprop_eps: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    clip_norm: float = 2.0
    ema_decay: float = 0.9999
    ema_bn: bool = True
    dropout: float = 0.2
    batch_size: int = 32
    augment: bool = True
    crop_padding: int = 4

    # ------------------------------------------------------------------------------------- the recipes ---
    @classmethod
    def paper(cls, **changes):
        """The paper's recipe (section 4, completed from Inception-v3 and TF-slim): learning rate 0.045."""
        return cls(**dict({"lr": 0.045}, **changes))

    @classmethod
    def scaled(cls, **changes):
        """This project's recipe for the scaled networks on 32x32 images (the defaults): learning rate 0.02."""
        return cls(**changes)

    @classmethod
    def bare(cls, lr=0.01, **changes):
        """The step the benchmarks time: the paper's RMSProp (decay 0.9, eps 1.0, momentum 0.9) on plain
        cross-entropy; no weight decay, smoothing, clipping, average, dropout or augmentation."""
        bare = dict(lr=lr, weight_decay=0.0, label_smoothing=0.0, clip_norm=None, ema_decay=None, dropout=0.0,
                    augment=False)
        return cls(**dict(bare, **changes))

    def replace(self, **changes):
        """A copy with ``changes`` (field=value), checked like a new recipe."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(f"Recipe: unknown field(s) {', '.join(unknown)}; the fields are "
                            f"{', '.join(f.name for f in fields(self))}")
        return replace(self, **changes)

    def as_dict(self):
        """The fields as a JSON-able dict."""
        return asdict(self)

    # ------------------------------------------------------------------------------------- the checks ---
    def __post_init__(self):
        for name in ("lr", "lr_decay", "lr_decay_epochs", "rmsprop_decay", "rmsprop_eps", "momentum",
                     "weight_decay", "label_smoothing", "dropout"):
            _real(name, getattr(self, name))
        for name in ("clip_norm", "ema_decay"):
            if getattr(self, name) is not None:
                _real(name, getattr(self, name))
        for name in ("batch_size", "crop_padding"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Recipe: {name} must be an int, got {value!r}")
        for name in ("ema_bn", "augment"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"Recipe: {name} must be True or False, got {getattr(self, name)!r}")
        if self.optimizer_name not in OPTIMIZERS:
            raise ValueError(f"Recipe: optimizer_name must be one of {', '.join(OPTIMIZERS)}, "
                             f"got {self.optimizer_name!r}")
        _check(self.lr > 0, "lr", "> 0", self.lr)
        _check(self.lr_decay > 0, "lr_decay", "> 0", self.lr_decay)
        _check(self.lr_decay_epochs > 0, "lr_decay_epochs", "> 0", self.lr_decay_epochs)
        _check(0 <= self.rmsprop_decay < 1, "rmsprop_decay", "in [0, 1)", self.rmsprop_decay)
        _check(self.rmsprop_eps >= 0, "rmsprop_eps", ">= 0", self.rmsprop_eps)
        _check(0 <= self.momentum < 1, "momentum", "in [0, 1)", self.momentum)
        _check(self.weight_decay >= 0, "weight_decay", ">= 0", self.weight_decay)
        _check(0 <= self.label_smoothing < 1, "label_smoothing", "in [0, 1)", self.label_smoothing)
        _check(self.clip_norm is None or self.clip_norm > 0, "clip_norm", "> 0 (None: no clipping)",
               self.clip_norm)
        _check(self.ema_decay is None or 0 < self.ema_decay < 1, "ema_decay", "in (0, 1) (None: no average)",
               self.ema_decay)
        _check(0 <= self.dropout < 1, "dropout", "in [0, 1)", self.dropout)
        _check(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)
        _check(self.crop_padding >= 0, "crop_padding", ">= 0", self.crop_padding)

    # ------------------------------------------------------------------------------- what it builds ---
    def optimizer(self, model):
        """The optimizer over ``model.named_parameters()`` (build it after ``model.to(device)``): RMSProp in
        TensorFlow's form, or momentum SGD; weight decay on conv and linear weights only."""
        from minception import optim
        params = model.named_parameters()
        if self.optimizer_name == "rmsprop":
            return optim.RMSProp(params, lr=self.lr, decay=self.rmsprop_decay, eps=self.rmsprop_eps,
                                 momentum=self.momentum, weight_decay=self.weight_decay,
                                 weight_decay_filter=optim.weights_only)
        return optim.SGD(params, lr=self.lr, momentum=self.momentum, nesterov=self.momentum > 0,
                         weight_decay=self.weight_decay, weight_decay_filter=optim.weights_only)

    def schedule(self, steps_per_epoch):
        """``step -> learning rate``: ``lr`` times ``lr_decay`` every ``lr_decay_epochs`` epochs of
        ``steps_per_epoch`` steps (``len(train_loader)``), staircase."""
        from minception import optim
        return optim.exponential_decay(self.lr, steps_per_epoch, rate=self.lr_decay,
                                       epochs_per_decay=self.lr_decay_epochs)

    def ema(self, model):
        """The moving average of ``model``'s parameters (and, with ``ema_bn``, of its floating-point buffers: the
        batch-norm running statistics), or None without ``ema_decay``. Build it after ``model.to(device)``."""
        if self.ema_decay is None:
            return None
        from minception import optim
        averaged = model.named_parameters()
        if self.ema_bn:
            averaged += [(name, b) for name, b in model.named_buffers() if b.dtype.kind == "f"]
        return optim.EMA(averaged, decay=self.ema_decay, module=model)

    def augmentation(self):
        """The training images' transform (random crop with ``crop_padding``, random flip), or None."""
        if not self.augment:
            return None
        from minception import data
        return data.standard_augmentation(padding=self.crop_padding)

    def train_loader(self, images, mean, std, seed=0, shard=(0, 1)):
        """A shuffling ``DataLoader`` over ``images`` (an ImageSet) in batches of ``batch_size``, incomplete last
        batch dropped, with the augmentation, normalised by ``mean``/``std`` per channel; ``shard``: this
        process's ``(rank, world_size)`` in data-parallel training."""
        from minception import data
        return data.DataLoader(images, self.batch_size, shuffle=True, drop_last=True,
                               transform=self.augmentation(), mean=mean, std=std, seed=seed, shard=shard)


def _real(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Recipe: {name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"Recipe: {name} must be finite, got {value}")


def _check(ok, name, expected, value):
    if not ok:
        raise ValueError(f"Recipe: {name} must be {expected}, got {value}")
