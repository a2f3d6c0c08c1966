"""What every chapter generator (tools/build_ch7.py, tools/build_ch8.py) shares: collecting cells, and
writing the notebook, fresh or (with --markdown-only) keeping the executed outputs of unchanged code."""
import sys

import nbformat

from notebook_code import same_code

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
