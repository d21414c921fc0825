"""Every `masking ...` command the README and docs/ show parses as written.

The commands are taken from the fenced code blocks of README.md and docs/*.md (lines starting with
`masking`, `.venv/bin/masking` or `python -m masking`, with `\\` continuations joined and trailing
`# comments` dropped) and handed to the CLI's own argument parser: an unknown sub-command, an
option that does not exist, a missing required argument or a wrong choice fails the test, naming
the file and line. Running them needs data and servers; the sections' own tests do that.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from masking.cli import _build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_START = re.compile(r"^\s*(?:\$\s+)?(?:\S*\.venv/bin/)?(?:masking|(?:\S*python3?)\s+-m\s+masking)\s")


def _commands() -> list[tuple[str, int, str]]:
    found = []
    for doc in DOCS:
        lines = doc.read_text(encoding="utf-8").splitlines()
        fenced = False
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.lstrip().startswith("```"):
                fenced = not fenced
            elif fenced and _START.match(line) and not re.match(r"^\s*masking(\s+[\w-]+)?:\s", line):  # not output
                start, text = i + 1, line
                while text.rstrip().endswith("\\") and i + 1 < len(lines):
                    i += 1
                    text = text.rstrip()[:-1] + " " + lines[i].strip()
                found.append((doc.relative_to(ROOT).as_posix(), start, text))
            i += 1
    return found


COMMANDS = _commands()


def _argv(text: str) -> list[str]:
    text = re.split(r"\s#\s", text, maxsplit=1)[0]  # a trailing comment
    text = re.split(r"\s(?:\||&&|>|2>|<)\s|;", text, maxsplit=1)[0]  # the first command of a pipeline
    text = re.sub(r"\[[^\]]*\]", "", text)  # [optional parts] of a synopsis
    words = shlex.split(text)
    while words and not words[0].endswith("masking") and words[0] != "masking":
        words.pop(0)  # the interpreter and `-m`
    return words[1:]


def test_the_docs_show_commands() -> None:
    assert len(COMMANDS) > 40
    assert {c.split()[0] for _, _, c in COMMANDS}


@pytest.mark.parametrize(("doc", "line", "text"), COMMANDS, ids=[f"{d}:{n}" for d, n, _ in COMMANDS])
def test_documented_command_parses(doc: str, line: int, text: str) -> None:
    argv = _argv(text)
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code == 0 and ("--help" in argv or "-h" in argv):
            return
        pytest.fail(f"{doc}:{line}: `{text.strip()}` does not parse (exit {exc.code})")
    assert getattr(args, "handler", None) is not None, f"{doc}:{line}: `{text.strip()}` names no sub-command"
