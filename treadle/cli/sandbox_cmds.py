"""`treadle sandbox ...`: build the image, check the setup, sweep leftovers, run scripts."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from treadle.cli.common import exit_on_error
from treadle.errors import EXIT_FAILED, InputError

sandbox_app = typer.Typer(
    name="sandbox",
    help="The Docker sandbox: build its image, check the setup, sweep leftovers, run a script.",
    no_args_is_help=True,
)


def _parse_size(text: str) -> int:
    """'512m', '1g', '256' (MB) -> megabytes."""
    t = text.strip().lower().removesuffix("b")
    mult = {"k": 1 / 1024, "m": 1, "g": 1024}
    try:
        if t and t[-1] in mult:
            return max(1, int(float(t[:-1]) * mult[t[-1]]))
        return int(float(t))
    except ValueError:
        raise InputError(f"--memory is a size such as 512m or 1g, got {text!r}.") from None


@sandbox_app.command("build")
@exit_on_error
def build(
    method: Annotated[
        str, typer.Option(help="rootfs (Debian packages, no registry), base, or auto")
    ] = "auto",
    base: Annotated[str, typer.Option(help="base image for --method base")] = "python:3.11-slim",
    mirror: Annotated[
        str | None, typer.Option(help="Debian mirror URL (default: the host's apt sources)")
    ] = None,
    force: Annotated[bool, typer.Option(help="rebuild even when the tag exists")] = False,
) -> None:
    """Build the sandbox image (skipped when the tag exists)."""
    from treadle.runtime.sandbox.docker_sandbox import connect
    from treadle.runtime.sandbox.image import build_image

    api = connect()
    typer.echo(build_image(api, method=method, base=base, mirror=mirror, force=force))


@sandbox_app.command("doctor")
@exit_on_error
def doctor() -> None:
    """Say what is missing for the Docker sandbox, and how to fix it."""
    from treadle.runtime.sandbox.image import IMAGE, image_exists

    problems = 0

    def report(ok: bool, what: str, fix: str = "") -> None:
        nonlocal problems
        problems += not ok
        typer.echo(f"[{'ok' if ok else 'MISSING'}] {what}" + ("" if ok else f"\n      fix: {fix}"))

    try:
        import docker  # noqa: F401
    except ImportError:
        report(
            False, "docker Python package", "pip install docker  (or pip install 'treadle[run]')"
        )
        raise typer.Exit(EXIT_FAILED) from None
    report(True, "docker Python package")
    from treadle.errors import SandboxError
    from treadle.runtime.sandbox.docker_sandbox import connect

    try:
        api = connect()
    except SandboxError as exc:
        report(False, "Docker engine reachable", exc.message)
        raise typer.Exit(EXIT_FAILED) from None
    info = api.info()
    report(True, f"Docker engine {info.get('ServerVersion', '?')} reachable")
    init_bin = info.get("InitBinary") or "docker-init"
    host_local = not os.environ.get("DOCKER_HOST", "unix://").startswith(("tcp:", "ssh:"))
    init_ok = not host_local or bool(shutil.which(init_bin) or os.path.exists(init_bin))
    report(init_ok, f"init binary for --init ({init_bin})",
           "install the engine's init (Debian: apt-get install -y tini, docker-init is "
           "shipped with docker.io/docker-ce)")  # fmt: skip
    report(bool(info.get("MemoryLimit")), "memory limits (cgroup memory controller)",
           "enable the memory cgroup (kernel cmdline cgroup_enable=memory)")  # fmt: skip
    report(bool(info.get("SwapLimit")), "swap limits (memory+swap = memory)",
           "enable swap accounting (kernel cmdline swapaccount=1)")  # fmt: skip
    report(bool(info.get("PidsLimit")), "pids limits", "use a kernel with the pids cgroup")
    has_image = image_exists(api, IMAGE)
    builder = shutil.which("mmdebstrap") or shutil.which("debootstrap")
    hint = "" if builder else "  (first: apt-get install -y mmdebstrap)"
    report(has_image, f"sandbox image {IMAGE}", "treadle sandbox build" + hint)
    if has_image:
        import asyncio

        from treadle.runtime.sandbox import open_sandbox

        async def smoke() -> str:
            sb = await open_sandbox(pool_size=0)
            try:
                res = await sb.run(["python3", "-c", "print(6*7)"])
            finally:
                await sb.aclose()
            return res.stdout.strip()

        try:
            out = asyncio.run(smoke())
            report(
                out == "42", "a hardened container runs print(6*7)", f"unexpected output {out!r}"
            )
        except SandboxError as exc:
            report(False, "a hardened container runs", exc.message)
    if problems:
        typer.echo(f"{problems} problem(s) found.")
        raise typer.Exit(EXIT_FAILED)
    typer.echo("The Docker sandbox is ready.")


@sandbox_app.command("sweep")
@exit_on_error
def sweep(
    all_: Annotated[
        bool, typer.Option("--all", help="also containers of live treadle processes")
    ] = False,
) -> None:
    """Remove treadle containers left by dead processes (found by label)."""
    from treadle.runtime.sandbox.docker_sandbox import connect
    from treadle.runtime.sandbox.labels import sweep as do_sweep

    removed = do_sweep(connect(), everything=all_)
    typer.echo(f"removed {len(removed)} container(s)")


@sandbox_app.command("run")
@exit_on_error
def run(
    files: Annotated[
        list[Path],
        typer.Argument(exists=True, dir_okay=False, help="the scripts to run, one after another"),
    ],
    isolation: Annotated[
        str,
        typer.Option(help="reset (reuse a container after a verified reset) or fresh (one each)"),
    ] = "reset",
    timeout: Annotated[float, typer.Option(help="seconds before a run is killed")] = 10.0,
    memory: Annotated[str, typer.Option(help="memory limit (memory+swap), e.g. 512m, 1g")] = "256m",
    stdin: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="file fed to each stdin")
    ] = None,
    allow_network: Annotated[
        bool, typer.Option("--allow-network", help="give the code a network (explicit)")
    ] = False,
) -> None:
    """Run scripts in the sandbox, one after another through one pool; one JSON result per
    line (JSON Lines), in the order of the files."""
    import asyncio
    import json

    from treadle.runtime.sandbox import Limits, open_sandbox

    if isolation not in ("fresh", "reset"):
        raise InputError(f"--isolation is fresh or reset, got {isolation!r}.")
    limits = Limits(timeout_s=timeout, memory_mb=_parse_size(memory), network=allow_network)
    data = stdin.read_bytes() if stdin else None

    async def go() -> None:
        sb = await open_sandbox(
            limits=limits,
            pool_size=1,
            isolation=isolation,  # type: ignore[arg-type]
        )
        try:
            for file in files:
                body = file.read_bytes()
                name = file.name
                command = ["python3", name] if not body.startswith(b"#!") else [f"./{name}"]
                res = await sb.run(command, files={name: body}, stdin=data)
                line = {"file": str(file), **res.model_dump()}
                typer.echo(json.dumps(line, ensure_ascii=False, separators=(",", ":")))
                sys.stdout.flush()
        finally:
            await sb.aclose()

    asyncio.run(go())
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    """Add `treadle sandbox ...` to the `treadle` app."""
    app.add_typer(sandbox_app, name="sandbox")


__all__ = ["register"]
