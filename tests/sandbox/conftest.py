"""Fixtures for the sandbox suite: the real Docker engine and image, or a hard failure.

These tests are never skipped: a missing engine or image fails them with the fix to apply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from treadle.runtime.sandbox.docker_sandbox import DockerSandbox


@pytest.fixture(scope="session")
def docker_api() -> Any:
    from treadle.errors import SandboxError
    from treadle.runtime.sandbox.docker_sandbox import connect
    from treadle.runtime.sandbox.image import IMAGE, image_exists

    try:
        api = connect()
    except SandboxError as exc:
        pytest.fail(f"The sandbox tests need the Docker engine: {exc.message}", pytrace=False)
    if not image_exists(api, IMAGE):
        pytest.fail(
            f"The sandbox image {IMAGE} is missing: run `treadle sandbox build` first "
            "(apt-get install -y mmdebstrap if it is not installed).",
            pytrace=False,
        )
    return api


def containers_of(api: Any, run_id: str) -> list[dict[str, Any]]:
    return list(api.containers(all=True, filters={"label": f"treadle.run={run_id}"}))


@pytest.fixture(name="containers_of")
def containers_of_fixture() -> Any:
    return containers_of


@pytest.fixture(params=["fresh", "reset"])
def isolation(request: pytest.FixtureRequest) -> str:
    """Every test that takes a sandbox runs in both isolation modes."""
    return str(request.param)


@pytest.fixture
async def sandbox(docker_api: Any, isolation: str) -> AsyncIterator[DockerSandbox]:
    """A started sandbox with a small warm pool, in each isolation mode; afterwards none of
    its containers remain."""
    sb = DockerSandbox(pool_size=1, api=docker_api, isolation=isolation)  # type: ignore[arg-type]
    await sb.start()
    try:
        yield sb
    finally:
        await sb.aclose()
        left = containers_of(docker_api, sb.run_id)
        assert not left, f"containers left behind: {[c['Id'][:12] for c in left]}"
