"""The API reference's module pages, written at build time (``docs/api/modules/``, not kept in git).

Every public module of ``autograd``, ``ops`` and ``minception`` (no part of its name starts with ``_``, and no
``__main__``) gets one page. Each object is documented once, under the name users import it by: a function or
class that a package above its module re-exports (``ops.conv2d``, defined in ``ops/conv.py``) is documented on
that package's page, and its module's page links there. So no object has two entries in the index and every
cross-reference has one target.

Code, diagrams and ``Shape:`` sections (``x: (N, C, H, W) -> ...``) indented under the text before them are shown
as written (literal blocks), as the docstrings mean them: see ``literal_blocks``.
"""
import importlib
import inspect
import os
import pkgutil
import re

from sphinx.util import logging

logger = logging.getLogger(__name__)

PACKAGES = ("autograd", "ops", "minception")
OUT = os.path.join("api", "modules")


def is_public(name):
    return not any(part.startswith("_") for part in name.split("."))


def public_modules():
    """Names of every public module of the project, packages included, sorted."""
    names = []
    for top in PACKAGES:
        package = importlib.import_module(top)
        names.append(top)
        for info in pkgutil.walk_packages(package.__path__, top + "."):
            if is_public(info.name):
                names.append(info.name)
    return sorted(names)


def exported_names(module):
    """The names a package offers: its ``__all__``, or else every public name it binds."""
    names = getattr(module, "__all__", None)
    return list(names) if names is not None else [n for n in vars(module) if not n.startswith("_")]


def documented_here(name, modules):
    """The names that the page of module ``name`` documents: its own functions and classes that no package above
    it re-exports, and, for a package, what it re-exports from below that no package above it re-exports."""
    module = modules[name]
    owned = set()
    for attr, obj in vars(module).items():
        if attr.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        home = getattr(obj, "__module__", None) or ""
        if home != name and not (hasattr(module, "__path__") and home.startswith(name + ".")
                                 and attr in exported_names(module)):
            continue
        if canonical_package(attr, obj, modules) == name:
            owned.add(attr)
    return owned


def canonical_package(attr, obj, modules):
    """The topmost public package (or the defining module) that offers ``obj`` as ``attr``."""
    home = obj.__module__
    parts = home.split(".")
    for i in range(1, len(parts)):
        package = ".".join(parts[:i])
        if f"{package}.{attr}" in modules:   # ``autograd.gradcheck`` is a module: the function keeps its home
            continue
        if package in modules and getattr(modules[package], attr, None) is obj \
                and attr in exported_names(modules[package]):
            return package
    return home


def write_pages(app):
    modules = {name: importlib.import_module(name) for name in public_modules()}
    out = os.path.join(app.srcdir, OUT)
    os.makedirs(out, exist_ok=True)
    wanted = set()
    for name, module in modules.items():
        own = documented_here(name, modules)
        skip = sorted(attr for attr, obj in vars(module).items()      # data (``#:`` comments) is autodoc's call
                      if not attr.startswith("_") and attr not in own
                      and (inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj)
                           or callable(obj)))
        elsewhere = []
        for attr, obj in sorted(vars(module).items()):
            if attr.startswith("_") or attr in own or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if getattr(obj, "__module__", None) == name:
                role = "class" if inspect.isclass(obj) else "func"
                elsewhere.append(f"- {{py:{role}}}`{canonical_package(attr, obj, modules)}.{attr}`")
        kind = "package" if hasattr(module, "__path__") else "module"
        lines = [f"# `{name}`", "",
                 "```{eval-rst}", f".. automodule:: {name}", "   :members:"]
        if kind == "package":
            lines.append("   :imported-members:")
        if skip:
            lines.append("   :exclude-members: " + ", ".join(skip))
        lines += ["```", ""]
        if elsewhere:
            lines += [f"Defined in this {kind} and documented where they are imported from:", ""] + elsewhere + [""]
        text = "\n".join(lines)
        path = os.path.join(out, name + ".md")
        wanted.add(path)
        old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if old != text:                     # unchanged pages keep their time stamp: no needless rebuild
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    for stale in os.listdir(out):
        if os.path.join(out, stale) not in wanted:
            os.remove(os.path.join(out, stale))


#: the section headers napoleon reads (Google style); their bodies are left to it
SECTIONS = re.compile(r"^\s*(Args|Arguments|Attributes|Buffers|Example|Examples|Keyword Args|Keyword Arguments|Methods|"
                      r"Note|Notes|Other Parameters|Parameters|Raises|Raise|References|Return|Returns|See Also|"
                      r"Todo|Warning|Warnings|Warns|Yield|Yields):\s*$")
ITEM = re.compile(r"^(\s*)([-*+]|\d+\.|#\.)\s+")


def indent(line):
    return len(line) - len(line.lstrip())


def content_indent(line):
    """Where a line's text starts: after the marker of a list item."""
    item = ITEM.match(line)
    return len(item.group(0)) if item else indent(line)


def literal_blocks(app, what, name, obj, options, lines):
    """The docstrings' one convention for code and diagrams: a block indented under the text before it is shown
    as written. reST needs ``::`` for that; this adds it (before napoleon reads the sections).

    * after a blank line: ``::`` goes on a line of its own (the paragraph before keeps its words);
    * right under a line that ends in ``:`` (``Shape:``, ``Branches, in this order:``), which is not one of
      napoleon's section headers: that line ends in ``::`` and a blank line follows it.

    An indented list stays a list, and a list written right under the line that introduces it (``Stops:`` then
    ``- ...``) gets the blank line that reST needs before a list.
    """
    out, prev, blank, literal, section = [], None, False, None, None
    for line in lines:
        if not line.strip():
            out.append(line)
            blank = True
            continue
        ind = indent(line)
        if literal is not None and ind > literal:
            out.append(line)
            blank = False
            continue
        if literal is not None and not blank:
            out.append("")                  # a literal block ends at a blank line
        literal = None
        if section is not None and ind > section:
            out.append(line)
            prev, blank = line, False
            continue
        section = None
        if SECTIONS.match(line):
            section = ind
        elif prev is not None and not blank and ITEM.match(line) and not ITEM.match(prev) and ind == indent(prev):
            out.append("")                  # a list right under its heading line ("Stops:") starts a list
            literal = None
        elif prev is not None and ind > content_indent(prev):
            base = content_indent(prev)
            if prev.rstrip().endswith("::"):
                literal = base
            elif ITEM.match(line):          # an indented list is a list, not code
                if not blank:
                    out.append("")
            elif blank:
                out[-1:] = [out[-1], " " * base + "::", ""]
                literal = base
            elif prev.rstrip().endswith(":"):
                out[-1] = out[-1].rstrip() + ":"
                out.append("")
                literal = base
        out.append(line)
        prev, blank = line, False
    lines[:] = out


def unresolved(app, env, node, contnode):
    """A Python cross-reference that a hand-written page (a lecture, a guide, an API group page) makes must find
    its target: it is a warning, so the build fails. (Docstrings' own references may stay plain text.)"""
    if node.get("refdomain") == "py" and not node.get("refdoc", "").startswith(OUT.replace(os.sep, "/")):
        logger.warning("the reference %s finds nothing in the API reference", node.get("reftarget"),
                       location=node, type="minception", subtype="unresolved")


def one_document(app, doctree):
    """Nodes that a ``{eval-rst}`` block parsed (autodoc's output) still point to the temporary document they were
    parsed in, whose settings hold the whole build environment; pickled with the page, that made every API page's
    doctree over 1 MB (150 MB in all). They belong to the page's document."""
    for node in doctree.findall():
        own = node.__dict__.get("_document", node.__dict__.get("document", doctree))   # docutils < 0.22: document
        if own is not None and own is not doctree:
            node.document = doctree


def setup(app):
    app.connect("doctree-read", one_document)
    app.connect("missing-reference", unresolved, priority=900)
    app.connect("builder-inited", write_pages)
    app.connect("autodoc-process-docstring", literal_blocks, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
