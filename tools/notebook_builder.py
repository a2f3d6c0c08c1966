"""What every chapter generator (tools/build_ch7.py, tools/build_ch8.py) shares: collecting cells (an
exercise is three), and writing the notebook, fresh or (with --markdown-only) keeping the executed
outputs of unchanged code."""
import sys
import textwrap

import nbformat

from notebook_code import MAX_LINE, same_code

cells = []


def md(text, tags=None):
    c = nbformat.v4.new_markdown_cell(text.strip("\n"))
    if tags:
        c.metadata["tags"] = tags
    cells.append(c)


def code(src, tags=None):
    c = nbformat.v4.new_code_cell(src.strip("\n"))
    if tags:
        c.metadata["tags"] = tags
    cells.append(c)


def exercise(name, args, doc, solution):
    """An exercise's three cells: the stub to fill in (its docstring `doc` wrapped to fit the page), its
    check `ex.check_<name>`, and the reference solution checked the same way (hidden on the page, left
    out of the student version). solution: the body of `<name>_solution(args)`, indented."""
    doc = textwrap.fill(f'"""{doc}"""', MAX_LINE, initial_indent="    ", subsequent_indent="    ")
    code(f'def {name}({args}):\n{doc}\n    # YOUR CODE HERE\n    raise NotImplementedError')
    code(f"ex.check_{name}({name})")
    code(f"def {name}_solution({args}):\n{solution.strip(chr(10))}\n\n\nex.check_{name}({name}_solution)",
         ["hide-input", "solution"])


def write(path):
    """Write the collected cells to `path`. --markdown-only keeps the executed outputs: it takes the new
    text, tags, and layout of code whose syntax tree is unchanged (line breaks, comments), and refuses
    any other change to the code."""
    if "--markdown-only" in sys.argv:
        nb = nbformat.read(path, as_version=4)
        if [c.cell_type for c in nb.cells] != [c.cell_type for c in cells] or not all(
                same_code(old.source, new.source) for old, new in zip(nb.cells, cells) if old.cell_type == "code"):
            sys.exit("the code cells changed: rebuild without --markdown-only and execute the notebook")
        for old, new in zip(nb.cells, cells):
            old.source = new.source
            old.metadata.pop("tags", None)
            old.metadata.update(new.metadata)
    else:
        nb = nbformat.v4.new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
        nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, path)
    print(len(cells), "cells")
