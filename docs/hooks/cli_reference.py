"""MkDocs hook: render the ``acnn-fusion`` command line reference from the argument parser.

A page containing the marker ``<!-- acnn-fusion-cli -->`` gets, in its place, the ``--help``
text of the top-level parser and of every subcommand, taken from
:func:`acnn_fusion.cli.build_parser` at build time, so the reference cannot drift from the code.
"""

from __future__ import annotations

import argparse
import os

MARKER = "<!-- acnn-fusion-cli -->"
HELP_WIDTH = "100"  # argparse wraps to $COLUMNS; a fixed width keeps the page reproducible


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _summaries(parser: argparse.ArgumentParser) -> dict[str, str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {choice.dest: choice.help or "" for choice in action._choices_actions}
    return {}


def render_cli_reference() -> str:
    """Markdown for the whole command line: an index, then one section per subcommand."""
    saved = {key: os.environ.get(key) for key in ("COLUMNS", "NO_COLOR")}
    os.environ["COLUMNS"], os.environ["NO_COLOR"] = HELP_WIDTH, "1"
    try:
        from acnn_fusion.cli import build_parser

        parser = build_parser()
        subcommands = _subcommands(parser)
        summaries = _summaries(parser)
        lines = ["| command | what it does |", "| --- | --- |"]
        lines += [f"| [`{name}`](#{name}) | {summaries.get(name, '')} |" for name in subcommands]
        lines += ["", "```text", parser.format_help().rstrip(), "```", ""]
        for name, sub in subcommands.items():
            lines += [f"## `{name}` {{#{name}}}", "", "```text", sub.format_help().rstrip(), "```", ""]
        return "\n".join(lines)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, render_cli_reference())
    return markdown
