from __future__ import annotations

from typing import TYPE_CHECKING

from treadle.stdlib_ops._code import defines, is_code, sanitize

if TYPE_CHECKING:
    from tests.ops.conftest import Call, Scripted

REPLY = '''Here is the solution:

```python
import math

def helper(x):
    return x * 2

def double_sqrt(n: int) -> float:
    """Twice the root."""
    return helper(math.sqrt(n))

print(double_sqrt(4))
assert double_sqrt(4) == 4

if __name__ == "__main__":
    double_sqrt(9)
```
It prints 4.0.
'''


def test_sanitize_keeps_definitions_and_drops_demo_code() -> None:
    code = sanitize("import os\n\n@dec\ndef f():\n    return 1\n\nprint(f())\nX = 3\nf()\n")
    assert code == "import os\n\n@dec\ndef f():\n    return 1\n\nX = 3\n"


def test_sanitize_leaves_unparsable_and_clean_code_alone() -> None:
    assert sanitize("def f(:\n  pass\nprint(1)\n") == "def f(:\n  pass\nprint(1)\n"
    clean = "def f():\n    # a comment\n    return 1\n"
    assert sanitize(clean) == clean


def test_is_code_and_defines() -> None:
    assert is_code("def f():\n    return 1\n")
    assert is_code("import math")
    assert is_code("x = 1")
    assert is_code("print(sum(range(3)))")
    assert not is_code("42")
    assert not is_code("Paris")
    assert not is_code("Answer: 8")
    assert not is_code("2 + 2")
    assert not is_code("The answer is 42.")
    assert defines("def f(): pass\nclass C: pass\nY = 1", "f")
    assert defines("def f(): pass\nclass C: pass\nY = 1", "C")
    assert defines("def f(): pass\nclass C: pass\nY = 1", "Y")
    assert not defines("def g(): pass", "f")
    assert not defines("def (", "f")


async def test_write_code_extracts_and_trims_the_function(call: Call, scripted: Scripted) -> None:
    ctx = scripted(REPLY)
    code = await call(
        "write code",
        ctx,
        {"problem": "def double_sqrt(n):\n    '''...'''"},
        {"entry_point": "double_sqrt"},
    )
    assert code.startswith("import math\n")
    assert "def double_sqrt(n: int) -> float:" in code and "def helper(x):" in code
    assert "print(" not in code and "assert" not in code and "__main__" not in code
    compile(code, "<solution>", "exec")
    assert ctx.events == []
    (prompt,) = ctx.backend.prompts
    assert "`double_sqrt`" in prompt and "def double_sqrt(n):" in prompt


async def test_write_code_records_a_missing_entry_point(call: Call, scripted: Scripted) -> None:
    ctx = scripted("```python\ndef other():\n    return 1\n```")
    code = await call("write code", ctx, {"problem": "p"}, {"entry_point": "wanted"})
    assert code == "def other():\n    return 1\n"
    assert ctx.events == [("write_code.missing_entry_point", {"entry_point": "wanted"})]


async def test_write_code_default_token_budget_fits_a_function(
    call: Call, scripted: Scripted
) -> None:
    ctx = scripted("def f():\n    return 1\n")
    assert await call("write code", ctx, {"problem": "p"}) == "def f():\n    return 1\n"
    assert ctx.backend.calls[0].params.max_tokens == 1024
    assert "must be named" not in ctx.backend.prompts[0]


async def test_without_an_entry_point_a_script_is_kept_whole(
    call: Call, scripted: Scripted
) -> None:
    script = "def main():\n    print(55)\n\nmain()\n"
    ctx = scripted(f"```python\n{script}```")
    assert await call("write code", ctx, {"problem": "print 55"}) == script
    assert ctx.events == []
