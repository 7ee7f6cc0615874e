"""Where the compiler keeps what it derives once and reuses in every later process: the fast
parser's tables, Lark's own table cache and the operator signature table, so a fresh
`treadle check` starts fast.

Entries are named by a content hash of everything they derive from, so a stale entry is never
read, only left behind. The directory is the user's own (created 0700; one writable by others
is not used), because the parser tables are pickles and loading a planted one would run code;
Lark's default location, the shared temporary directory, is therefore avoided. Writes go to a
temporary file renamed into place, so concurrent processes never see half an entry. Any failure
only costs speed: the caller derives the value again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import sys
from pathlib import Path


def cache_dir() -> Path | None:
    """$TREADLE_CACHE_DIR/compiler (else $XDG_CACHE_HOME/treadle, else ~/.cache/treadle), made
    if missing; None when it cannot be made or is not safe to read from."""
    env = os.environ.get("TREADLE_CACHE_DIR")
    if env:
        base = Path(env).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "treadle"
    path = base / "compiler"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except OSError:
        return None
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return None
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    return path


def digest(*parts: bytes | str) -> str:
    """A short content hash of `parts`, with the Python version (pickles and reprs differ)."""
    h = hashlib.sha256(f"{sys.version_info[:2]}".encode())
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()[:32]


def write_atomic(path: Path, data: bytes) -> bool:
    """Write `data` to `path` all at once; False (and nothing written) on any error."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False
