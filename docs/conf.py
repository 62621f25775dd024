"""Sphinx configuration of minception's documentation site.

Build it (warnings are errors) from the repository's root, with the ``docs`` extra installed:

    python3 -m sphinx -W --keep-going -b html docs docs/_build/html
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)                    # the packages as they are in this checkout
sys.path.insert(0, os.path.join(HERE, "_ext"))
# The lectures run in a Jupyter kernel, a process of its own: it finds the packages through PYTHONPATH.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
os.environ.pop("MINCEPTION_KERNELS", None)  # the default kernel tier, as in a student's fresh kernel
os.environ.pop("MPLBACKEND", None)          # the kernel's inline backend, so that figures come back as PNGs

project = "minception"
author = "the minception authors"
copyright = "the minception authors, MIT License"
release = version = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 copied into the site: the pages need no network (see below)
    "sphinx.ext.viewcode",
    "myst_nb",
    "apipages",              # docs/_ext/apipages.py: one API page per public module
]

# Sources: the Markdown pages and the lectures (jupytext percent-format notebooks, docs/lectures/NN_*.py).
# Every other .py file under docs/ (this one, docs/_ext/) is not a page.
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
exclude_patterns = ["_build", "jupyter_execute", "conf.py", "_ext", "**/.ipynb_checkpoints", "**/__pycache__"]
root_doc = "index"

# The lectures are executed at build time; an error in a cell fails the build.
nb_execution_mode = "cache"
nb_execution_cache_path = os.path.join(HERE, "_build", ".jupyter_cache")
nb_execution_timeout = 180               # seconds per cell (each lecture takes under 15 s on 2 cores)
nb_execution_raise_on_error = True
nb_execution_in_temp = True              # in a temporary folder: what a lecture writes stays out of docs/
nb_execution_show_tb = True
nb_merge_streams = True

# Math is typeset in the browser by MathJax, served with the site (sphinx-mathjax-offline sets mathjax_path to its
# copy), so that the pages work where nothing outside the machine can be reached: CI, a classroom, a laptop offline.

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# The API reference (docs/api/): autodoc reads the docstrings, written in one style: reST inline markup
# (``code``), Google-style sections (Args:, Returns:, Raises:) read by napoleon, and Shape: sections.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_mock_imports = ["cupy", "cupyx"]      # the GPU kernels import CuPy lazily; this keeps any that do not
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_custom_sections = [("Buffers", "params_style")]     # a module's buffers, listed as its arguments are
add_module_names = False

html_theme = "furo"
html_title = "minception"
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"
html_show_sourcelink = False
