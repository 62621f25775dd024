"""docs/reading.md stays true: every file it lists exists with about the size it says, every test it names exists,
and every tutorial stage it names is one of the tutorial's."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READING = os.path.join(ROOT, "docs", "reading.md")
ROW = re.compile(r"^\|\s*`(?P<path>[^`]+)`\s*\|\s*(?P<lines>\d+)\s*\|(?P<what>[^|]+)\|(?P<stage>[^|]*)\|(?P<tests>[^|]+)\|$")
TUTORIAL_STAGES = range(1, 7)


def rows():
    with open(READING, encoding="utf-8") as f:
        return [m.groupdict() for m in map(ROW.match, f.read().splitlines()) if m]


def count_lines(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return sum(1 for _ in f)


def test_reading_order_lists_the_core_first_and_the_training_step_last():
    paths = [row["path"] for row in rows()]
    assert len(paths) >= 30, f"expected the reading table rows of docs/reading.md, found {len(paths)}"
    assert paths[0] == "autograd/tensor.py"
    assert paths[-1] == "minception/train/loop.py"


def test_every_listed_file_exists_with_about_the_stated_size():
    wrong = []
    for row in rows():
        path = row["path"]
        if not os.path.isfile(os.path.join(ROOT, path)):
            wrong.append(f"{path}: no such file")
            continue
        actual, stated = count_lines(path), int(row["lines"])
        if abs(actual - stated) > max(10, stated // 10):
            wrong.append(f"{path}: docs/reading.md says {stated} lines, the file has {actual}")
    assert not wrong, "docs/reading.md is out of date:\n  " + "\n  ".join(wrong)


def test_every_named_test_file_exists_and_every_stage_is_the_tutorials():
    wrong = []
    for row in rows():
        for test in re.findall(r"`([^`]+)`", row["tests"]):
            if not os.path.isfile(os.path.join(ROOT, test)):
                wrong.append(f"{row['path']}: names {test}, which does not exist")
        for stage in re.findall(r"\d+", row["stage"]):
            if int(stage) not in TUTORIAL_STAGES:
                wrong.append(f"{row['path']}: names tutorial stage {stage}; the tutorial has stages 1-6")
    assert not wrong, "docs/reading.md is out of date:\n  " + "\n  ".join(wrong)


def test_the_core_is_read_in_one_sitting():
    """The reading path promises the autograd core and gradcheck in about 1,100 lines."""
    core = [row["path"] for row in rows() if row["path"].startswith("autograd/")]
    total = sum(count_lines(path) for path in core)
    assert 900 <= total <= 1200, f"the autograd core listed in docs/reading.md is {total} lines"
