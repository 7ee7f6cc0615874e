"""How fast the compiler is: a 40-step flow in a warm process (and where its time goes), lines
per second on a 2,000-line file, and `treadle check examples/*.flow` as a fresh process beside
`python -c "import lark, pydantic"` (the floor a check built on those two cannot beat).

    python benchmarks/compile_speed.py

Prints its figures; the last line is one JSON object with them. Aims: under 5 ms for the
40-step flow (parse + check + lower); the fresh-process check within 2x of the import floor.

Fresh processes run as after an install (pip writes bytecode then): with PYTHONDONTWRITEBYTECODE
unset and a private PYTHONPYCACHEPREFIX, warmed once, for the check and the floor alike. The
check as this shell would run it (bytecode as the environment allows) is reported too.
"""

from __future__ import annotations

import glob
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from treadle.compiler import compile_source  # noqa: E402
from treadle.compiler.comments import attach_comments  # noqa: E402
from treadle.compiler.parsing import parse  # noqa: E402
from treadle.compiler.parsing.fast_lalr import fast_parse  # noqa: E402
from treadle.compiler.parsing.lalr import lark_parser  # noqa: E402


def flow(steps: int, name: str = "bench") -> str:
    """A workflow of `steps` steps mixing operators, a map, branches and a bounded loop."""
    lines = [f"workflow {name}(problem: text) -> answer: text"]
    lines.append('  d0 = generate from "Solve: {problem}" with temperature 0.7')
    n = 1
    while n < steps:
        k = n % 8
        prev = f"d{n - 1}"
        if k == 1:
            lines.append(f'  d{n} = generate from "Improve: {{{prev}}}" given problem')
        elif k == 2:
            lines.append(f"  d{n} = for each s in [1, 2, 3]: generate from {prev} with seed s")
        elif k == 3:
            lines.append(f"  d{n} = vote {prev}")
        elif k == 4:
            lines.append(f'  r{n} = review "{{{prev}}}" for problem')
            lines.append(f"  if r{n}.approved then")
            lines.append(f'    d{n} = "{{{prev}}}"')
            lines.append("  else")
            lines.append(f'    d{n} = revise "{{{prev}}}" using r{n}.feedback for problem')
            lines.append("  end")
        elif k == 5:
            lines.append(f"  d{n} = answer for problem given d{n - 1}")
        elif k == 6:
            lines.append(f"  d{n} = d{n - 1}.answer")
        elif k == 7:
            lines.append(f"  d{n} = {prev}")
            lines.append("  repeat up to 3 times")
            lines.append(f"    c{n} = review d{n} for problem")
            lines.append(f"    d{n} = revise d{n} using c{n}.feedback")
            lines.append(f"  until c{n}.approved")
        else:
            lines.append(f"  d{n} = format {prev} for problem")
        n += 1
    lines.append(f'  answer = "{{d{n - 1}}}"')
    lines.append("end")
    return "\n".join(lines) + "\n"


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def fresh_runs(
    cmds: dict[str, list[str]], env: dict[str, str], n: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU (user + system) times in ms of fresh `python ARGS` processes: one warm-up
    each, then `n` rounds with the commands interleaved. CPU time is the steadier figure on a
    loaded machine (waiting for a core is not counted)."""
    wall: dict[str, list[float]] = {k: [] for k in cmds}
    cpu: dict[str, list[float]] = {k: [] for k in cmds}
    for args in cmds.values():
        subprocess.run([sys.executable, *args], capture_output=True, env=env, cwd=ROOT)
    for _ in range(n):
        for name, args in cmds.items():
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run([sys.executable, *args], capture_output=True, env=env, cwd=ROOT)
            wall[name].append((time.perf_counter() - t) * 1000)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            used = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
            cpu[name].append(used * 1000)
    return wall, cpu


def calibration_ms() -> float:
    """A fixed pure-Python loop, to compare figures across machines (~45 ms on a 2023 laptop)."""
    return median_ms(lambda: sum(range(3_000_000)), 5)


def main() -> None:
    calib = calibration_ms()
    print(f"machine calibration (sum(range(3e6))): {calib:.0f} ms")
    small = flow(40)
    compile_source(small)  # warm: grammar tables, operator registry
    step_count = small.count(" = ")
    ms40 = median_ms(lambda: compile_source(small), 200)
    parse40 = median_ms(lambda: parse(small), 200)
    fast40 = median_ms(lambda: fast_parse(small), 200)
    tree = parse(small)[0]
    comments40 = median_ms(lambda: attach_comments(tree, small), 200)
    lark40 = median_ms(lambda: lark_parser().parse(small), 50)
    lower40 = ms40 - parse40
    print(f"40-step flow ({step_count} bindings, {small.count(chr(10))} lines):")
    print(f"  parse + check + lower: median {ms40:.2f} ms   (parse alone {parse40:.2f} ms)")
    print(
        f"  breakdown: LALR fast path {fast40:.2f} ms, comments {comments40:.2f} ms, "
        f"names/types/lowering {lower40:.2f} ms; Lark's own parser would take {lark40:.2f} ms"
    )

    big = "\n".join(flow(30, f"w{i}") for i in range(60))
    while big.count("\n") < 2000:
        big += "\n" + flow(30, f"x{big.count(chr(10))}")
    n_lines = big.count("\n")
    compile_source(big)
    ms_big = median_ms(lambda: compile_source(big), 5)
    lps = n_lines / (ms_big / 1000)
    print(f"{n_lines}-line file: median {ms_big:.1f} ms, {lps:,.0f} lines/s")

    load = os.getloadavg()
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    files = sorted(glob.glob(str(ROOT / "examples" / "*.flow")))
    check = ["-c", "from treadle.cli import main; main()", "check", *files]
    shell_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as pycache:
        env = {k: v for k, v in shell_env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = pycache
        # interpreter start-up (site, .pth files) is the floor of any command; importing lark
        # and pydantic the floor of a check built on them; runs interleaved, so load is shared
        runs, cpu = fresh_runs(
            {"pass": ["-c", "pass"], "floor": ["-c", "import lark, pydantic"], "check": check},
            env,
            9,
        )
    floor_ms, base_ms, cli_ms = (statistics.median(runs[k]) for k in ("pass", "floor", "check"))
    base_cpu, cli_cpu = (statistics.median(cpu[k]) for k in ("floor", "check"))
    as_is = fresh_runs({"floor": ["-c", "import lark, pydantic"], "check": check}, shell_env, 5)
    as_is_ms = statistics.median(as_is[0]["check"])
    as_is_ratio = as_is_ms / statistics.median(as_is[0]["floor"])
    print(f"python -c pass, fresh process: median {floor_ms:.0f} ms")
    print(f'python -c "import lark, pydantic", fresh process: median {base_ms:.0f} ms')
    print(
        f"treadle check examples/*.flow ({len(files)} files), fresh process: median {cli_ms:.0f} ms"
        f" = {cli_ms / base_ms:.2f}x the import floor"
    )
    print(
        f"  CPU time: check {cli_cpu:.0f} ms, import floor {base_cpu:.0f} ms = "
        f"{cli_cpu / base_cpu:.2f}x"
    )
    print(
        f"  with this shell's bytecode setting: check median {as_is_ms:.0f} ms = "
        f"{as_is_ratio:.2f}x the import floor"
    )
    heavy = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from treadle.compiler import check_file; "
            f"[check_file(f) for f in {files!r}]; "
            "print(','.join(m for m in ('llama_cpp', 'docker', 'httpx') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    ).stdout.strip()
    print(f"heavy modules imported by check: {heavy or 'none'}")
    print(
        json.dumps(
            {
                "calibration_ms": round(calib, 1),
                "compile_40_steps_median_ms": round(ms40, 3),
                "parse_40_steps_median_ms": round(parse40, 3),
                "big_file_lines": n_lines,
                "big_file_median_ms": round(ms_big, 1),
                "lines_per_second": round(lps),
                "cli_check_examples_median_ms": round(cli_ms, 1),
                "cli_heavy_imports": heavy.split(",") if heavy else [],
                "python_startup_median_ms": round(floor_ms, 1),
                "import_lark_pydantic_median_ms": round(base_ms, 1),
                "cli_check_vs_import_ratio": round(cli_ms / base_ms, 2),
                "cli_check_examples_env_bytecode_median_ms": round(as_is_ms, 1),
                "cli_check_vs_import_ratio_env_bytecode": round(as_is_ratio, 2),
                "cli_check_cpu_median_ms": round(cli_cpu, 1),
                "import_lark_pydantic_cpu_median_ms": round(base_cpu, 1),
                "cli_check_vs_import_cpu_ratio": round(cli_cpu / base_cpu, 2),
                "fast_parse_40_steps_median_ms": round(fast40, 3),
                "comments_40_steps_median_ms": round(comments40, 3),
                "lower_40_steps_median_ms": round(lower40, 3),
                "lark_parse_40_steps_median_ms": round(lark40, 3),
                "load_average": [round(x, 2) for x in load],
            }
        )
    )


if __name__ == "__main__":
    main()
