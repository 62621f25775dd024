"""One call of a contract check: a function of the family, its arguments, and the names of its results."""
from dataclasses import dataclass, field

from .report import describe_value


@dataclass
class Call:
    """``function(*args.values())``, with ``args`` in the function's order (name -> value).

    ``results`` names what it returns: one name for one value, several for a tuple, none when it returns nothing.
    ``shapes`` gives a result's shape in the contract's words (for the report). ``in_place`` names the arguments
    the function writes by contract: they are compared with the reference's afterwards; every other array argument
    must come back unchanged. ``keywords`` names the arguments passed by keyword."""
    function: str
    args: dict
    results: tuple
    shapes: dict = field(default_factory=dict)
    in_place: tuple = ()
    keywords: tuple = ()

    def text(self):
        """The call written out, e.g. ``im2col(x: (2, 3, 7, 5) float32, kernel_size: (3, 2), ...)``."""
        return f"{self.function}({', '.join(f'{k}: {describe_value(v)}' for k, v in self.args.items())})"

    def split_args(self, args):
        """``(positional list, keyword dict)`` for ``args`` (a dict like ``self.args``)."""
        positional = [v for k, v in args.items() if k not in self.keywords]
        return positional, {k: v for k, v in args.items() if k in self.keywords}
