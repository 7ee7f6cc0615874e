"""`isolation` from the outside: `Flow.run(sandbox=SandboxConfig(isolation=...))`, `treadle run
--isolation`, and `treadle sandbox run [--isolation M] FILE...` printing one JSON result per line
through one pool."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from treadle.api import Flow
from treadle.runtime.sandbox.docker_sandbox import DockerSandbox
from treadle.runtime.session import SandboxConfig

pytestmark = pytest.mark.docker

FLOW = """
workflow check(code: code) -> report: text
  result = test code against "assert f(2) == 4\\nassert f(3) == 9\\n"
  report = result.feedback
end
"""

#: prints the run's container and uid: reuse is visible from the outside
WHO = (
    "import os\n"
    "cg = open('/proc/self/cgroup').read()\n"
    "print(cg.split('/docker/')[-1].split()[0][:12], os.getuid())\n"
)


@pytest.mark.parametrize("isolation", ["fresh", "reset"])
async def test_flow_run_takes_the_isolation(
    docker_api: Any, isolation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[DockerSandbox] = []
    real_start = DockerSandbox.start

    async def start(self: DockerSandbox) -> DockerSandbox:
        opened.append(self)
        return await real_start(self)

    monkeypatch.setattr(DockerSandbox, "start", start)
    flow = Flow.from_source(FLOW)
    good = await flow.run(
        {"code": "def f(x):\n    return x * x\n"},
        sandbox=SandboxConfig("docker", isolation),  # type: ignore[arg-type]
        cache=False,
    )
    assert good.outputs["report"] == "All 2 tests passed."
    assert [sb.isolation for sb in opened] == [isolation]


def _treadle(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from treadle.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("isolation", ["fresh", "reset"])
def test_sandbox_run_prints_json_lines_through_one_pool(
    docker_api: Any, tmp_path: Path, isolation: str
) -> None:
    files = []
    for i in range(3):
        f = tmp_path / f"s{i}.py"
        f.write_text(WHO + f"print({i} * 7)\n" + ("raise SystemExit(3)\n" if i == 2 else ""))
        files.append(str(f))
    proc = _treadle("sandbox", "run", "--isolation", isolation, "--timeout", "5", *files)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3
    results = [json.loads(line) for line in lines]
    assert [r["file"] for r in results] == files
    assert [r["exit_code"] for r in results] == [0, 0, 3]
    assert [r["stdout"].split()[2] for r in results] == ["0", "7", "14"]
    who = [tuple(r["stdout"].split()[:2]) for r in results]
    if isolation == "reset":  # one container, a new uid each run
        assert len({c for c, _ in who}) == 1 and len({u for _, u in who}) == 3
    else:
        assert len({c for c, _ in who}) == 3


def test_cli_refuses_an_unknown_isolation(tmp_path: Path) -> None:
    f = tmp_path / "a.py"
    f.write_text("print(1)\n")
    bad = _treadle("sandbox", "run", "--isolation", "shared", str(f))
    assert bad.returncode == 2 and "--isolation is fresh or reset" in bad.stderr
    flow = tmp_path / "f.flow"
    flow.write_text(FLOW)
    bad_run = _treadle("run", str(flow), "--isolation", "shared", "-i", "code=x")
    assert bad_run.returncode != 0 and "--isolation is fresh or reset" in bad_run.stderr


def test_treadle_run_with_isolation_fresh(docker_api: Any, tmp_path: Path) -> None:
    flow = tmp_path / "f.flow"
    flow.write_text(FLOW)
    proc = _treadle(
        "run", str(flow), "--isolation", "fresh", "--no-cache", "--input",
        "code=def f(x):\n    return x + 2\n",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["report"].startswith("1 of 2 tests failed")
