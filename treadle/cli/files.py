"""The files a command is given and writes: checked before any work, folders of `.flow` files
walked, outputs written into folders made for them. Imports nothing heavy (no typer), so the
fast `check`/`compile`/`fmt` path uses it too."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from treadle.errors import InputError


def existing_file(path: Path, option: str | None = None) -> Path:
    """`path` if it is a file, else the input error that says why (named by the `option` it was
    given to, when there is one), before any work is done."""
    given = f" (given to {option})" if option else ""
    if path.is_dir():
        raise InputError(f"{path}{given} is a folder; give a file.")
    if not path.is_file():
        raise InputError(f"There is no file {path}{given}.")
    return path


def read_file(path: Path, option: str | None = None) -> str:
    """The text of a file the user gave (UTF-8); a missing, unreadable or binary file is an
    input error, never a traceback."""
    try:
        return existing_file(path, option).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else f"not UTF-8 text: {e.reason}"
        raise InputError(f"Cannot read {path}: {reason}.") from None


def flow_files(paths: Iterable[Path]) -> list[Path]:
    """The `.flow` files named, a folder standing for every `.flow` file under it (sorted); a
    folder without any is an input error."""
    out: list[Path] = []
    for p in paths:
        if not p.is_dir():
            out.append(p)
            continue
        found = sorted(f for f in p.rglob("*.flow") if f.is_file())
        if not found:
            raise InputError(f"The folder {p} holds no .flow files.")
        out.extend(found)
    return out


def write_file(path: Path, text: str) -> None:
    """Write an output the user asked for, making its folder first (as `eval --report` does), so
    finished work is not lost to a missing directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
