"""The guard that keeps originals: no command writes an output onto one of its inputs.

Under Art. 18 a masking tool must never destroy originals. Every command that writes calls
`refuse_overwrite(outputs, inputs)` before it writes anything; it raises `OutputError` (exit 2)
naming both paths when an output is an input, or resolves to one: the same name, a name through a
symbolic link or `..`, or another hard link to the same file (same device and inode). Two outputs
that are the same file are refused as well. Stream URLs and `-` (standard input/output) are never
files and are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from masking.errors import OutputError

PathLike = str | os.PathLike[str] | None


def _file_names(paths: Iterable[PathLike]) -> list[str | os.PathLike[str]]:
    """The entries that name files: not None, `-` or a URL."""
    return [p for p in paths if p is not None and str(p) not in ("", "-") and "://" not in str(p)]


def _identity(p: str | os.PathLike[str]) -> tuple[str, tuple[int, int] | None]:
    """The resolved absolute name and, if it exists, (st_dev, st_ino)."""
    real = os.path.realpath(os.path.abspath(os.fspath(p)))
    try:
        st = os.stat(real)
    except OSError:
        return real, None
    return real, (st.st_dev, st.st_ino)


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two names denote the same file or folder (links and `..` resolved, hard links included)."""
    (ra, ia), (rb, ib) = _identity(a), _identity(b)
    return ra == rb or (ia is not None and ia == ib)


def refuse_overwrite(outputs: Iterable[PathLike], inputs: Iterable[PathLike]) -> None:
    """Raise `OutputError` naming both paths if any output is (or resolves to) an input, or two
    outputs are the same file. `None`, `-` and URLs are ignored."""
    outs = [(p, _identity(p)) for p in _file_names(outputs)]
    ins = [(p, _identity(p)) for p in _file_names(inputs)]
    for k, (out, (r_out, i_out)) in enumerate(outs):
        for inp, (r_in, i_in) in ins:
            if r_out == r_in or (i_out is not None and i_out == i_in):
                if os.path.abspath(os.fspath(out)) == os.path.abspath(os.fspath(inp)):
                    how = f"it is the input {inp}"
                elif r_out == r_in:
                    how = f"it resolves to the input {inp} ({r_in}, through a symbolic link or `..`)"
                else:
                    how = f"it is the same file as the input {inp} (a hard link)"
                raise OutputError(
                    f"refusing to write {out}: {how}; originals are never overwritten. Choose another output name."
                )
        for other, (r_other, i_other) in outs[:k]:
            if r_out == r_other or (i_out is not None and i_out == i_other):
                raise OutputError(f"refusing to write {out} and {other}: they are the same file; choose two names")


def expand_inputs(entries: Iterable[PathLike]) -> list[Path]:
    """Entries and, for folders, the files directly inside them (for the guard's input list)."""
    out: list[Path] = []
    for e in _file_names(entries):
        p = Path(os.fspath(e))
        out.append(p)
        if p.is_dir():
            try:
                out.extend(c for c in p.iterdir() if c.is_file())
            except OSError:
                pass
    return out
