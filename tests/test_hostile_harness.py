"""The child-process harness of the hostile-input cases (tests/hostile.py) tells each way a case can end."""
from hostile import run_limited


def test_each_outcome_is_told_apart():
    assert run_limited("x = 1").outcome == "ok"
    raised = run_limited("raise ValueError('bad header')")
    assert (raised.outcome, raised.error_type, raised.message) == ("raised", "ValueError", "bad header")
    assert run_limited("x = bytearray(2 << 30)", memory_mb=512).outcome == "memory"
    assert run_limited("while True: pass", seconds=2).outcome == "timeout"
    assert run_limited("import os; os._exit(3)").outcome == "crashed"
