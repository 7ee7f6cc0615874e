"""The build check `make install` runs: llama_print_system_info() read right, a crashing or
silent smoke child judged "rebuild needed", and the installed build and its server pass."""

from __future__ import annotations

import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treadle.runtime.models import llama_build
from treadle.runtime.models.llama_build import beyond_portable, check_build, parse_system_info

# What llama-cpp-python 0.3.36 prints for the Makefile's portable flags on this machine.
PORTABLE = (
    "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
    "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |"
)
# A -march=native build on a CPU that advertises AMX and AVX-512 (the crashing one).
NATIVE = (
    "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | "
    "BMI2 = 1 | AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | "
    "AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |"
)
# The older one-section format (llama.cpp before the backend registry), everything listed.
OLD = "AVX = 1 | AVX_VNNI = 0 | AVX2 = 1 | AVX512 = 0 | AVX512_VBMI = 0 | FMA = 1 | NEON = 0 | "


def test_system_info_is_read_into_pairs() -> None:
    info = parse_system_info(PORTABLE)
    assert info["SSE3"] == "1" and info["REPACK"] == "1" and info["AVX2"] == "1"
    assert len(info) == 10
    assert parse_system_info(OLD) == {
        "AVX": "1", "AVX_VNNI": "0", "AVX2": "1", "AVX512": "0", "AVX512_VBMI": "0",
        "FMA": "1", "NEON": "0",
    }  # fmt: skip


def test_only_features_beyond_the_portable_flags_count() -> None:
    assert beyond_portable(parse_system_info(PORTABLE)) == []
    assert beyond_portable(parse_system_info(OLD)) == []  # listed but off
    assert beyond_portable(parse_system_info(NATIVE)) == [
        "AMX_INT8", "AVX512", "AVX512_BF16", "AVX512_VBMI", "AVX512_VNNI", "AVX_VNNI",
    ]  # fmt: skip


KEYS = st.text(string.ascii_uppercase + string.digits + "_", min_size=1, max_size=12)


@given(st.dictionaries(KEYS, st.sampled_from(["0", "1"]), max_size=12))
def test_printing_then_parsing_gives_the_pairs_back(pairs: dict[str, str]) -> None:
    text = "CPU : " + "".join(f"{k} = {v} | " for k, v in pairs.items())
    assert parse_system_info(text) == pairs


def child(info: str, then: str) -> str:
    """A stand-in smoke child: prints `info` as the real one does, then runs `then`."""
    return f"import os, signal\nprint('SYSTEM_INFO ' + {info!r}, flush=True)\n{then}\n"


def test_a_child_killed_by_sigsegv_means_rebuild(tmp_path: Path) -> None:
    crash = child(NATIVE, "os.kill(os.getpid(), signal.SIGSEGV)")
    check = check_build(tmp_path / "m.gguf", child=crash)
    assert check.returncode == -11 and check.completion is None
    assert check.rebuild_needed
    assert check.reasons == [
        "not the portable build: AMX_INT8 = 1, AVX512 = 1, AVX512_BF16 = 1, AVX512_VBMI = 1, "
        "AVX512_VNNI = 1, AVX_VNNI = 1",
        "the one-token smoke test failed (killed by SIGSEGV)",
    ]


def test_a_portable_build_that_crashes_still_means_rebuild(tmp_path: Path) -> None:
    check = check_build(tmp_path / "m.gguf", child=child(PORTABLE, "os.abort()"))
    assert check.reasons == ["the one-token smoke test failed (killed by SIGABRT)"]


def test_a_child_that_completes_nothing_means_rebuild(tmp_path: Path) -> None:
    check = check_build(tmp_path / "m.gguf", child=child(PORTABLE, "raise SystemExit(0)"))
    assert check.reasons == ["the one-token smoke test failed (exit status 0)"]


def test_a_hanging_child_is_stopped_and_means_rebuild(tmp_path: Path) -> None:
    hang = child(PORTABLE, "import time; time.sleep(60)")
    check = check_build(tmp_path / "m.gguf", child=hang, timeout=2)
    assert check.reasons == ["the one-token smoke test failed (killed by SIGKILL)"]
    assert "no answer in 2 s" in check.stderr_tail


def test_the_rebuild_skips_the_wheel_cache_and_keeps_the_version() -> None:
    argv, env = llama_build.rebuild_command("-DGGML_NATIVE=OFF")
    assert {"--no-cache-dir", "--force-reinstall", "--no-deps"} <= set(argv)
    assert argv[-1].startswith("llama-cpp-python==") and env["CMAKE_ARGS"] == "-DGGML_NATIVE=OFF"


@pytest.mark.model
def test_the_installed_build_is_portable_and_completes_a_token() -> None:
    check = check_build()
    assert not check.rebuild_needed, llama_build.report(check)
    assert check.returncode == 0 and check.completion
    assert "AVX2 = 1" in check.system_info


@pytest.mark.model
def test_the_installed_server_completes_one_request(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "treadle.runtime.models.llama_build", "serve-once",
         "--log", str(tmp_path / "server.log")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "completed one request" in res.stdout
