"""The two rules that turn the paper's numbers into layers of a scaled network.

* **width**: every conv's output count ``c`` becomes ``max(1, floor(c * width + 0.5))`` — stems, blocks,
  reductions, Table 1's k, l, m, n alike. The residual up-convs are not scaled by this rule: they follow
  their block's input width, and max-pool branches pass their input channels through.
* **small_input** (32x32 images): every stride-2 layer of the stem becomes stride 1, and every valid ("V")
  padding of the whole network becomes "same". A 32x32 image is then 32x32 after the stem, 16x16 after
  Reduction-A and 8x8 after Reduction-B (the paper's 299x299 gives 35, 17, 8).

Block code keeps the paper's numbers visible: a box "1x1 Conv 64" is written ``conv(c_in, ch(64), 1)``, where
``ch = rules.channels``.
"""
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Rules:
    """How to scale the paper's architecture.

    Args:
        width: multiplier of every conv's output count (1.0 is the paper).
        small_input: adapt the geometry to 32x32 inputs (see the module docstring).
    """

    width: float = 1.0
    small_input: bool = False

    def __post_init__(self):
        if isinstance(self.width, bool) or not isinstance(self.width, (int, float)) or not self.width > 0 \
                or not math.isfinite(self.width):
            raise ValueError(f"models: width must be a positive number, got {self.width!r}")

    def channels(self, c):
        """The scaled output count of a conv the paper gives ``c`` filters: ``max(1, floor(c*width + 0.5))``."""
        return max(1, math.floor(c * self.width + 0.5))

    @property
    def valid(self):
        """Padding of a conv the paper marks 'V': "valid", or "same" for small inputs."""
        return "same" if self.small_input else "valid"

    @property
    def valid_pool(self):
        """Padding of a 3x3 pool the paper marks 'V': 0, or 1 (same) for small inputs."""
        return 1 if self.small_input else 0

    def stem_stride(self, stride):
        """Stride of a stem layer the paper gives ``stride``: 1 for small inputs."""
        return 1 if self.small_input else stride


def check_variant(name, variant):
    """``variant``: "paper" (the figures) or "released" (TF-slim's graph, whose weights were published)."""
    if variant not in ("paper", "released"):
        raise ValueError(f"{name}: variant must be 'paper' or 'released', got {variant!r}")
    return variant


def check_network_args(name, num_classes, blocks, dropout):
    """Clear errors for the keywords every network factory shares; returns ``blocks`` as a tuple of 3 ints."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"{name}: num_classes must be a positive int, got {num_classes!r}")
    try:
        blocks = tuple(blocks)
    except TypeError:
        raise ValueError(f"{name}: blocks must be 3 repeat counts (A, B, C), got {blocks!r}") from None
    if len(blocks) != 3 or any(isinstance(b, bool) or not isinstance(b, int) or b < 0 for b in blocks):
        raise ValueError(f"{name}: blocks must be 3 non-negative ints (repeats of the A, B, C blocks), got {blocks!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"{name}: dropout must be a probability in [0, 1), got {dropout!r}")
    return blocks


def check_residual_scale(name, residual_scale):
    """``residual_scale``: None (no scaling) or 3 numbers/None for the A, B, C blocks; returns a 3-tuple."""
    if residual_scale is None:
        return (None, None, None)
    try:
        scales = tuple(residual_scale)
    except TypeError:
        raise ValueError(f"{name}: residual_scale must be None or 3 scales (A, B, C), got {residual_scale!r}") from None
    if len(scales) != 3 or any(s is not None and (isinstance(s, bool) or not isinstance(s, (int, float)))
                               for s in scales):
        raise ValueError(f"{name}: residual_scale must be None or 3 numbers (or None) for the A, B, C blocks, "
                         f"got {residual_scale!r}")
    return scales
