"""The sandbox image: Python 3, coreutils (`timeout`) and nothing else the code could use.

Two recipes, both idempotent (a build is skipped when the tag exists):
- `rootfs`: Debian packages into a root filesystem with mmdebstrap (or debootstrap) from the
  machine's configured apt sources, then `docker import`. Needs no image registry.
- `base`: a `docker build` on a base image such as python:3.11-slim, where a registry is reachable.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from treadle.errors import SandboxError
from treadle.version import __version__

IMAGE_NAME = "treadle-sandbox"
#: bumped when the recipe changes what a container costs or contains (2: bytecode compiled)
RECIPE = 2
IMAGE = f"{IMAGE_NAME}:{__version__}-r{RECIPE}"
#: uid:gid the code runs as (Debian's `nobody`); never root
USER = "65534:65534"
PACKAGES = ("python3-minimal", "libpython3-stdlib", "coreutils")
DEFAULT_BASE = "python:3.11-slim"

_CHANGES = (
    f"USER {USER}",
    "WORKDIR /work",
    "ENV PATH=/usr/local/bin:/usr/bin:/bin PYTHONUTF8=1 PYTHONDONTWRITEBYTECODE=1",
    'CMD ["sleep", "infinity"]',
    "LABEL treadle.image=1",
)
#: the root is read-only, so Python cannot cache bytecode at run time: without this, every
#: container compiles json, subprocess, ast, ... from source on each import (~100 ms CPU/run)
_COMPILE = "python3 -m compileall -q -j 0 /usr/lib/python3* /usr/local/lib/python3*"
_EXCLUDES = (
    "/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*",
    "/usr/share/lintian/*", "/usr/share/zoneinfo/*",
)  # fmt: skip


def image_exists(api: Any, tag: str = IMAGE) -> bool:
    try:
        api.inspect_image(tag)
    except Exception as exc:
        if "No such image" in str(exc) or "404" in str(exc):
            return False
        raise
    return True


def _codename() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return "bookworm"
    m = re.search(r"^VERSION_CODENAME=\"?([a-z]+)", text, re.M)
    return m.group(1) if m else "bookworm"


def host_debian_sources(codename: str | None = None) -> list[str]:
    """One-line `deb` entries for the Debian archives the host's apt is configured with.

    Only entries of the host's Debian release are kept (third-party repositories are not
    needed for the image), deb822 `.sources` and classic `.list` files alike.
    """
    codename = codename or _codename()
    entries: list[tuple[str, str]] = []
    files = [Path("/etc/apt/sources.list")]
    d = Path("/etc/apt/sources.list.d")
    if d.is_dir():
        files += sorted(d.iterdir())
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.suffix == ".sources":
            for block in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in block.splitlines():
                    if line.startswith("#") or ":" not in line:
                        continue
                    k, v = line.split(":", 1)
                    fields[k.strip().lower()] = v.strip()
                if "deb" not in fields.get("types", "").split():
                    continue
                for uri in fields.get("uris", "").split():
                    for suite in fields.get("suites", "").split():
                        entries.append((uri, suite))
        else:
            for line in text.splitlines():
                words = [w for w in line.split() if not w.startswith("[")]
                if len(words) >= 3 and words[0] == "deb":
                    entries.append((words[1], words[2]))
    lines = []
    for uri, suite in entries:
        if suite.split("-")[0] == codename and "debian" in uri:
            line = f"deb {uri} {suite} main"
            if line not in lines:
                lines.append(line)
    return lines or [f"deb http://deb.debian.org/debian {codename} main"]


def _rootfs_tar(out: Path, mirror: str | None, log: Callable[[str], None]) -> None:
    codename = _codename()
    sources = [f"deb {mirror} {codename} main"] if mirror else host_debian_sources(codename)
    mm = shutil.which("mmdebstrap")
    if mm:
        cmd = [
            mm, "--variant=essential", "--include=" + ",".join(PACKAGES),
            *(f"--dpkgopt=path-exclude={p}" for p in _EXCLUDES),
            "--dpkgopt=path-include=/usr/share/zoneinfo/UTC",
            "--customize-hook=rm -rf \"$1\"/var/cache/apt/* \"$1\"/var/lib/apt/lists/* "
            "\"$1\"/var/log/* \"$1\"/usr/share/perl* \"$1\"/usr/lib/x86_64-linux-gnu/perl*",
            "--customize-hook=mkdir -p \"$1\"/work && chmod 1777 \"$1\"/work",
            f"--customize-hook=chroot \"$1\" sh -c \"{_COMPILE}\"",
            codename, str(out), *sources,
        ]  # fmt: skip
        log("running: " + " ".join(cmd[:3]) + " ... " + codename)
        _check_call(cmd, "mmdebstrap")
        return
    ds = shutil.which("debootstrap")
    if not ds:
        raise SandboxError(
            "Building the sandbox image without a registry needs mmdebstrap or debootstrap. "
            "Install one (`apt-get install -y mmdebstrap`), or build from a base image where a "
            f"registry is reachable: `treadle sandbox build --method base --base {DEFAULT_BASE}`."
        )
    with tempfile.TemporaryDirectory(prefix="treadle-rootfs-") as root:
        mirror_url = mirror or sources[0].split()[1]
        cmd = [ds, "--variant=minbase", "--include=" + ",".join(PACKAGES), codename, root,
               mirror_url]  # fmt: skip
        log("running: " + " ".join(cmd))
        _check_call(cmd, "debootstrap")
        for sub in ("usr/share/doc", "usr/share/man", "usr/share/locale", "var/cache/apt",
                    "var/lib/apt/lists"):  # fmt: skip
            shutil.rmtree(os.path.join(root, sub), ignore_errors=True)
        os.makedirs(os.path.join(root, "work"), mode=0o1777, exist_ok=True)
        _check_call(["chroot", root, "sh", "-c", _COMPILE], "compileall")
        _check_call(["tar", "-C", root, "-cf", str(out), "."], "tar")


def _check_call(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise SandboxError(
            f"{what} failed (exit {proc.returncode}) while building the sandbox image. "
            f"Check that the apt sources are reachable and that you run as root. Output:\n{tail}"
        )


def build_image(
    api: Any,
    *,
    method: str = "auto",
    base: str = DEFAULT_BASE,
    mirror: str | None = None,
    tag: str = IMAGE,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> str:
    """Build the sandbox image unless `tag` exists; returns what was done."""
    if not force and image_exists(api, tag):
        return f"{tag} already exists; nothing to do (use --force to rebuild)"
    if method == "auto":
        method = "rootfs" if (shutil.which("mmdebstrap") or shutil.which("debootstrap")) else "base"
    if method == "rootfs":
        with tempfile.TemporaryDirectory(prefix="treadle-image-") as tmp:
            tar = Path(tmp) / "rootfs.tar"
            _rootfs_tar(tar, mirror, log)
            log(f"importing {tar.stat().st_size / 1e6:.0f} MB root filesystem as {tag}")
            cmd = ["docker", "import", *(a for c in _CHANGES for a in ("--change", c)), str(tar)]
            if shutil.which("docker"):
                _check_call([*cmd, tag], "docker import")
            else:  # no CLI: the API takes the tarball as the request body
                repo, _, version = tag.partition(":")
                with open(tar, "rb") as f:
                    api.import_image_from_data(f.read(), repository=repo, tag=version,
                                               changes=list(_CHANGES))  # fmt: skip
        return f"built {tag} from Debian packages ({', '.join(PACKAGES)})"
    if method == "base":
        dockerfile = (
            f"FROM {base}\n"
            "RUN rm -rf /usr/share/doc /usr/share/man /var/lib/apt/lists/* "
            f"&& mkdir -p /work && chmod 1777 /work && {_COMPILE}\n"
            + "".join(c + "\n" for c in _CHANGES)
        )
        try:
            for chunk in api.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True,
                                   pull=False, decode=True):  # fmt: skip
                if "error" in chunk:
                    raise SandboxError(
                        f"Building the sandbox image from {base} failed: {chunk['error']}. "
                        "Without a registry, build from Debian packages instead: "
                        "`apt-get install -y mmdebstrap && treadle sandbox build --method rootfs`."
                    )
                if chunk.get("stream", "").strip():
                    log(chunk["stream"].rstrip())
        except SandboxError:
            raise
        except Exception as exc:
            raise SandboxError(
                f"Building the sandbox image from {base} failed ({exc}). Without a registry, "
                "build from Debian packages: `treadle sandbox build --method rootfs`."
            ) from exc
        return f"built {tag} from {base}"
    raise SandboxError(f"unknown build method {method!r}; use auto, rootfs or base")
