"""Checks on the code cells of the book's notebooks, shared by the tests and the chapter generators.

    python tools/notebook_code.py book/*.ipynb      # lines wider than the page's code box

MAX_LINE is what fits the rendered book's code box: measured in headless Chromium, the box holds 87
characters in a 1400-pixel-wide window and 81 in an 800-pixel one.
"""
import ast
import sys

import nbformat

MAX_LINE = 80


def syntax(src):
    """The syntax tree of a cell as text, with IPython's ! and % lines replaced by their text and the
    docstrings' white space normalised, so that two cells compare equal when only their layout, their
    comments or the wrapping of a docstring differ."""
    lines = [line[:len(line) - len(line.lstrip())] + f"_ipython({line.strip()!r})"
             if line.lstrip().startswith(("!", "%")) else line for line in src.split("\n")]
    tree = ast.parse("\n".join(lines))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                first.value.value = " ".join(first.value.value.split())
    return ast.dump(tree)


def same_code(a, b):
    return a == b or syntax(a) == syntax(b)


def shown(cell):
    """Whether the rendered page shows the cell's code (the Colab set-up cell, for one, is removed)."""
    return cell.cell_type == "code" and not {"remove-cell", "remove-input"} & set(cell.metadata.get("tags", []))


def long_lines(path, limit=MAX_LINE):
    """(cell index, line number, length) of every shown code line in the notebook wider than `limit`."""
    nb = nbformat.read(path, as_version=4)
    return [(i, n, len(line)) for i, c in enumerate(nb.cells) if shown(c)
            for n, line in enumerate(c.source.split("\n"), 1) if len(line) > limit]


if __name__ == "__main__":
    for path in sys.argv[1:]:
        for i, n, width in long_lines(path):
            print(f"{path}: cell {i}, line {n}: {width} characters (at most {MAX_LINE})")
