"""Running an example script's ``main(argv)`` in the test process, as the example tests do.

    code, text = run_main(example, "--out", tmp_path / "run", "--max-steps", "2")

``example`` is the script loaded as a module (the ``script_loader`` fixture of tests/conftest.py); every argument
is passed as a string; ``text`` is everything it printed, stdout and stderr together.
"""
import contextlib
import io


def run_main(example, *args):
    """``example.main(args)`` in-process; returns ``(exit code, everything printed)``."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = example.main([str(a) for a in args])
    return code, buf.getvalue()
