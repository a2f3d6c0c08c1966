"""Fail if a built page loads a script, a stylesheet or a font from the network.

The book must work opened from disk with no internet (MathJax is served by the site itself:
tools/vendor_mathjax.py). Links to other sites (Colab, GitHub, papers) are fine; what a page
*loads* is not. `make test` runs this after the strict build.

    python tools/check_offline.py [_build/html]
"""
import re
import sys
from pathlib import Path

LOADS = re.compile(r"<(script|link|img|iframe)\b[^>]*?\b(src|href)=\"(https?:)?//[^\"]+\"[^>]*>", re.I)


def remote_loads(html):
    """The tags of a page that fetch something from another host (a <link> only if it is a stylesheet,
    a preload or an icon: plain links to other sites are allowed)."""
    found = []
    for m in LOADS.finditer(html):
        tag = m.group(0)
        if m.group(1).lower() == "link" and not re.search(r"rel=\"(stylesheet|preload|icon|modulepreload)\"", tag):
            continue
        found.append(tag)
    return found


def main(root="_build/html"):
    pages = sorted(Path(root).rglob("*.html"))
    if not pages:
        sys.exit(f"no pages under {root}: build the book first (make book)")
    bad = {p: remote_loads(p.read_text(encoding="utf-8")) for p in pages}
    bad = {p: tags for p, tags in bad.items() if tags}
    for page, tags in bad.items():
        print(f"{page}: loads from the network: {tags[0][:160]}" + (f" (and {len(tags) - 1} more)" if len(tags) > 1 else ""))
    if bad:
        sys.exit(f"{len(bad)} of {len(pages)} pages need the network; serve those files from the site")
    print(f"{len(pages)} pages load nothing from the network")


if __name__ == "__main__":
    main(*sys.argv[1:])
