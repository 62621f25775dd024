"""Quoting a value read from an untrusted file in an error message, without the message itself failing.

Formatting a value from a hostile file can be the crash: ``str()`` of an integer with more than 4,300 digits
raises ``ValueError`` in Python 3.11+, and a string of a gigabyte or a list nested a million deep makes a message
nobody can read (or a ``RecursionError``). ``shorten(value)`` gives a short, always-safe text instead.
"""
import reprlib


class _ShortRepr(reprlib.Repr):
    def __init__(self, width):
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother, self.maxlong = 3, width, width, width
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = self.maxfrozenset = 6

    def repr_int(self, x, level):
        if x.bit_length() > 256:              # about 77 digits: describe it instead of writing it out
            return f"<an integer of about {int(x.bit_length() * 0.30103) + 1:,} digits>"
        return super().repr_int(x, level)

    def repr_bytes(self, x, level):
        text = repr(x[:self.maxstring])                # b'\x01' takes four characters a byte
        return text if len(text) <= self.maxstring and len(x) <= self.maxstring else text[:self.maxstring] + "..."


def shorten(value, width=60):
    """A readable, bounded ``repr`` of ``value`` (at most about ``width`` characters per item, 3 levels deep)."""
    try:
        return _ShortRepr(width).repr(value)
    except Exception:                         # a value whose own __repr__ fails: say what it is
        return f"<{type(value).__name__}>"
