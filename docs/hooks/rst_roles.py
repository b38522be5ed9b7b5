"""MkDocs hook: drop Sphinx cross-reference roles from rendered docstrings.

The package's docstrings use Sphinx roles (``:func:`fuse_pair```); Markdown renders them as
``:func:<code>fuse_pair</code>``. This keeps the code span and drops the role, and shortens
``~package.module.name`` targets to ``name`` as Sphinx would.
"""

from __future__ import annotations

import re

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|mod|data|exc|obj):<code>(~?)([^<]*)</code>")


def _plain(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"<code>{target.rsplit('.', 1)[-1] if tilde else target}</code>"


def on_page_content(html: str, page, config, files) -> str:
    return ROLE.sub(_plain, html)
