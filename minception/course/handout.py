"""The handout: the student's exercise files, written from the library's own source.

The solutions live in the library, between two marker comments, indented like the code around them::

    def im2col(x, kernel_size, stride, padding):
        \"\"\"... the task, the shapes, the formula, a hint or two ...\"\"\"
        xp = get_array_module(x)            # given: the set-up lines stay in the handout
        # --- solution: begin ---         <- a marker: a comment line with nothing else on it
        ...                                 # the solution: the student writes these lines
        # --- solution: end ---           <- the other marker, indented like the first

``student_file(file)`` copies the library file behind a student file (``exercises.FILE_SOURCES``): a kernel
module whole (so that it is a complete kernel family), the optimizer and the block as just the definitions the
exercise needs, with the imports they use. Relative imports become absolute (``from ...geometry import
conv_out_size`` -> ``from ops.geometry import conv_out_size``), so the file runs from anywhere. Each solution
region becomes::

        # YOUR CODE HERE (exercise 3, im2col)
        raise NotImplementedError("exercise 3 im2col: write im2col (see its docstring)")

``student_file(file, solutions=True)`` keeps the solution lines instead; either way the markers are removed.
``regions(text)`` finds the regions and checks that they are balanced (the tests run it on every library file).
"""
import ast
import os
import re
import textwrap

from .exercises import EXERCISES, exercises_in

BEGIN = "# --- solution: begin ---"
END = "# --- solution: end ---"

#: the repository root (the folder that holds ``ops/`` and ``minception/``)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: student file -> the top-level definitions copied from its library module (None: the whole module). Names that
#: the copied definitions use and that are defined in the library module but not copied are imported from it.
DEFINITIONS = {
    "rmsprop.py": ("rmsprop_update",),
    "inception_resnet_a.py": ("_check_version", "InceptionResNetA"),
}


class HandoutError(ValueError):
    """A library file whose solution markers are unbalanced, or a region outside any exercise function."""


def source_path(module_file):
    """The absolute path of a library file given from the root, e.g. ``ops/kernels/reference/im2col.py``."""
    return os.path.join(ROOT, *module_file.split("/"))


def regions(text, where="<text>"):
    """The solution regions of ``text``: a list of ``(begin line, end line)`` 0-based indices of the marker lines.

    Raises HandoutError naming ``where`` and the line for an END without BEGIN, a BEGIN inside a region, a
    region left open, or an END indented unlike its BEGIN."""
    found, opened = [], None
    for number, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if stripped == BEGIN:
            if opened is not None:
                raise HandoutError(f"{where}:{number + 1}: '{BEGIN}' inside the region opened at line {opened + 1}")
            opened = number
        elif stripped == END:
            if opened is None:
                raise HandoutError(f"{where}:{number + 1}: '{END}' without a '{BEGIN}' before it")
            indent = _indent(text.splitlines()[opened])
            if _indent(line) != indent:
                raise HandoutError(f"{where}:{number + 1}: '{END}' indented by {len(_indent(line))}, expected "
                                   f"{len(indent)} as its '{BEGIN}' at line {opened + 1}")
            found.append((opened, number))
            opened = None
    if opened is not None:
        raise HandoutError(f"{where}:{opened + 1}: '{BEGIN}' never closed by a '{END}'")
    return found


def _indent(line):
    return line[:len(line) - len(line.lstrip())]


def _enclosing_definition(tree, line):
    """The qualified name (``InceptionResNetA.__init__``) of the innermost def holding 1-based ``line``."""
    best, stack = None, [(tree, "")]
    while stack:
        node, prefix = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.ClassDef)) and child.lineno <= line <= child.end_lineno:
                name = f"{prefix}{child.name}"
                if isinstance(child, ast.FunctionDef):
                    best = name
                stack.append((child, name + "."))
    return best


def _exercise_of(function, file, where):
    """The exercise of ``file`` whose functions include ``function`` (or its class)."""
    for e in exercises_in(file):
        if function in e.functions or function.split(".")[0] in e.functions:
            return e
    raise HandoutError(f"{where}: a solution region in {function}, which no exercise of {file} names "
                       f"(expected one of {', '.join(f for e in exercises_in(file) for f in e.functions)})")


def fill_regions(text, file, solutions, where):
    """``text`` with each solution region replaced by the NotImplementedError of its exercise (or, with
    ``solutions``, by its own lines), the marker lines removed."""
    lines = text.splitlines()
    found = regions(text, where)
    tree = ast.parse(text, filename=where)
    out, last = [], 0
    for begin, end in found:
        out += lines[last:begin]
        if solutions:
            out += lines[begin + 1:end]
        else:
            function = _enclosing_definition(tree, begin + 1)
            if function is None:
                raise HandoutError(f"{where}:{begin + 1}: a solution region outside any function")
            e = _exercise_of(function, file, where)
            indent = _indent(lines[begin])
            out.append(f"{indent}# YOUR CODE HERE (exercise {e.id}, {e.name})")
            out += _raise_line(indent, f"exercise {e.id} {e.name}: ", f"write {function} (see its docstring)")
        last = end + 1
    out += lines[last:]
    return "\n".join(out) + "\n"


def _raise_line(indent, head, tail):
    """``raise NotImplementedError("<head><tail>")``, as two lines when one would pass 100 columns."""
    line = f'{indent}raise NotImplementedError("{head}{tail}")'
    if len(line) <= 100:
        return [line]
    return [f'{indent}raise NotImplementedError("{head}"', f'{indent}                          "{tail}")']


def _absolute(node, module):
    """``from`` import ``node`` of ``module`` written with an absolute module name."""
    source = node.module or ""
    if node.level:
        package = module.split(".")[:-1]
        base = package[:len(package) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in node.names)
    return f"from {source} import {names}"


def _bound_names(node):
    """The names an import statement binds."""
    return [(a.asname or a.name).split(".")[0] for a in node.names]


def _used_names(nodes):
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)}


def library_text(file, module, source_file):
    """The library's text for the student's ``file``: the whole module, or the definitions of ``DEFINITIONS``
    with the imports they use; relative imports made absolute; markers still in place."""
    with open(source_path(source_file), encoding="utf-8") as f:
        text = f.read()
    tree = ast.parse(text, filename=source_file)
    lines = text.splitlines()
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    if DEFINITIONS.get(file) is None:
        for node in reversed(imports):            # rewrite in place, last first so that line numbers hold
            if isinstance(node, ast.ImportFrom) and node.level:
                lines[node.lineno - 1:node.end_lineno] = [_absolute(node, module)]
        return "\n".join(lines) + "\n"
    wanted = DEFINITIONS[file]
    defined = {node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    missing = [name for name in wanted if name not in defined]
    if missing:
        raise HandoutError(f"{source_file}: no top-level definition {', '.join(missing)} (DEFINITIONS[{file!r}])")
    copied = [defined[name] for name in wanted]
    used = _used_names(copied)
    head = []
    for node in imports:
        if used & set(_bound_names(node)):
            head.append(_absolute(node, module) if isinstance(node, ast.ImportFrom) else
                        "\n".join(lines[node.lineno - 1:node.end_lineno]))
    borrowed = sorted(name for name in used & set(defined) if name not in wanted)
    if borrowed:
        head.append(f"from {module} import {', '.join(borrowed)}")
    body = ["\n".join(lines[_first_line(node) - 1:_last_line(node, lines)]) for node in copied]
    return "\n".join(head) + "\n\n\n" + "\n\n\n".join(body) + "\n"


def _first_line(node):
    return min([node.lineno] + [d.lineno for d in node.decorator_list])


def _last_line(node, lines):
    """The definition's last line, 1-based, counting the comment lines indented inside it that follow its last
    statement (the AST ends at the statement, and a closing marker is such a comment)."""
    last, inside = node.end_lineno, _indent(lines[node.lineno - 1]) + " "
    while last < len(lines) and lines[last].strip().startswith("#") and lines[last].startswith(inside):
        last += 1
    return last


def _header(file, source_file, comment):
    """The student file's opening: which exercises it holds and where it came from, as a docstring or (for a
    whole library module, which keeps its own docstring) as comment lines."""
    held = exercises_in(file)
    title = (f"Exercise{'s' if len(held) > 1 else ''} {' and '.join(f'{e.id} ({e.name})' for e in held)} "
             f"of the minception course.")
    text = (f"Write the code where NotImplementedError is raised; each function's docstring states the task, the "
            f"shapes, the formula and a hint or two. Written from the library's {source_file} by `python -m "
            f"minception.course new`; run `pytest` on your copy to test it (README.md).")
    if comment:
        return "".join(f"# {line}\n" for line in textwrap.wrap(f"{title} {text}", 98))
    return f'"""{title}\n\n' + "\n".join(textwrap.wrap(text, 100)) + '\n"""\n'


def student_file(file, solutions=False):
    """The text of the student's ``file`` (e.g. ``"im2col.py"``): the handout, or with ``solutions`` the same
    file with the library's solution code in place. Markers never appear in either."""
    held = exercises_in(file)
    if not held:
        raise ValueError(f"unknown exercise file {file!r}; expected one of "
                         f"{', '.join(dict.fromkeys(e.file for e in EXERCISES))}")
    source_file, module = held[0].source, held[0].module
    text = library_text(file, module, source_file)
    text = fill_regions(text, file, solutions, where=source_file)
    text = _header(file, source_file, comment=DEFINITIONS.get(file) is None) + text
    return re.sub(r"\n{4,}", "\n\n\n", text)
