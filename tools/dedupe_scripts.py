"""A Sphinx extension for the book: drop repeated <script> tags from every page.

sphinx-thebe and sphinx-togglebutton add their inline configuration scripts twice (once with
filename None, once with ""; Sphinx's own check for repeats treats those as different), so every
page declared `const THEBE_JS_URL` twice and the browser logged a SyntaxError (found by
tests/browser). Keeping the first of identical scripts fixes it and changes nothing else. Loaded through `sphinx: local_extensions` in _config.yml.
"""


def dedupe(app, pagename, templatename, context, doctree):
    seen, kept = set(), []
    for script in context.get("script_files", []):
        key = (getattr(script, "filename", script) or "",            # None and "" both mean an inline script
               tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", dedupe)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
