"""Importing minception when ``autograd`` or ``ops`` is another project's package (HIPS autograd, Canonical's ops)
stops with one message naming both packages and the fix. A fake foreign package is put first on sys.path of a
child process."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def import_minception(folder):
    """Run ``import minception`` with ``folder`` first on sys.path (it is the working directory of ``python -c``)
    and this repository next."""
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-c", "import minception.nn; print('imported')"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", ["autograd", "ops"])
def test_a_foreign_package_of_the_same_name_is_named(tmp_path, name):
    fake = tmp_path / name
    fake.mkdir()
    (fake / "__init__.py").write_text('"""Someone else\'s package."""\nVERSION = "1.0"\n')
    result = import_minception(tmp_path)
    assert result.returncode != 0 and "imported" not in result.stdout
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ImportError: minception needs its own top-level package"), result.stderr[-800:]
    for fragment in (f"'import {name}' found another package", str(fake / "__init__.py"), "HIPS autograd",
                     "Canonical's ops", "virtual environment", f"pip uninstall {name}"):
        assert fragment in last_line, (fragment, last_line)


def test_the_own_packages_pass_the_check(tmp_path):
    result = import_minception(tmp_path)
    assert result.returncode == 0 and "imported" in result.stdout, result.stderr[-800:]
