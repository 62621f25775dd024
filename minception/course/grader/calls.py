"""Calling one of the student's functions inside the child process: the exception it raised, told by name.

``call(fn, args)`` runs ``fn(*args)`` and returns ``(result, None)``, or ``(None, problem)`` when the function
raised: ``NotImplementedError`` is "not started" (the handout's bodies raise it), any other exception is
reported with its type, message and the line of the student's file it came from. ``call_text`` writes a call
out for the report: ``im2col(x=(2, 3, 7, 5) float64, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0))``.
"""
import os
import traceback

from .compare import describe


class NotStarted(Exception):
    """The student's function raised NotImplementedError: the exercise is not started."""


def call_text(function, names, args):
    """The call written out, one ``name=value`` per argument (arrays as shape and dtype)."""
    return f"{function}({', '.join(f'{n}={describe(a)}' for n, a in zip(names, args))})"


def where_raised(error):
    """``" (im2col.py, line 42)"``: the innermost frame of the student's own files, or of any file."""
    frames = traceback.extract_tb(error.__traceback__)
    mine = [f for f in frames if os.sep + "exercises" + os.sep in f.filename] or frames[-1:]
    if not mine:
        return ""
    frame = mine[-1]
    return f" ({os.path.basename(frame.filename)}, line {frame.lineno})"


def call(fn, args):
    """``fn(*args)``: ``(result, None)``, or ``(None, problem)`` when it raised (NotStarted re-raised)."""
    try:
        return fn(*args), None
    except NotImplementedError:
        raise NotStarted() from None
    except (Exception, MemoryError, RecursionError) as error:   # student code: any exception is its result
        message = str(error).splitlines()[0][:200] if str(error) else ""
        return None, {"output": "", "kind": "exception",
                      "message": f"raised {type(error).__name__}: {message}{where_raised(error)}"}
