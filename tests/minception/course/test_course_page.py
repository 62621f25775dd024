"""docs/course.md, the instructors' page, lists every exercise of the catalog as the catalog has it."""
import os
import re

from minception.course.exercises import EXERCISES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_the_course_page_lists_every_exercise_in_order_with_its_file_and_minutes():
    with open(os.path.join(ROOT, "docs", "course.md"), encoding="utf-8") as f:
        rows = re.findall(r"^\| (\d+) \| `(\w+)` \| `([\w.]+)` \| [^|]+ \| (\d+) \|$", f.read(), re.M)
    assert [(int(i), name, file, int(minutes)) for i, name, file, minutes in rows] == \
        [(e.id, e.name, e.file, e.minutes) for e in EXERCISES]


def test_the_readme_links_the_course_page():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        assert "(docs/course.md)" in f.read()
