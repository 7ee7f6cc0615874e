"""The host <-> agent request/reply framing (see guest/agent.py), against the real engine:
arguments, names and bytes that a line- or JSON-based protocol could garble must arrive intact."""

from __future__ import annotations

import hashlib
import json

import pytest

from treadle.runtime.sandbox.base import Limits
from treadle.runtime.sandbox.docker_sandbox import DockerSandbox, encode_request

pytestmark = pytest.mark.docker

ECHO = "import sys, json; print(json.dumps(sys.argv[1:]))"


async def test_arguments_with_newlines_spaces_and_unicode(sandbox: DockerSandbox) -> None:
    args = ["a b", "line1\nline2", "", "é ✓ 😀", '{"x": 1}', "12 34 56\n"]
    r = await sandbox.run(["python3", "-c", ECHO, *args])
    assert r.ok, r
    assert json.loads(r.stdout) == args


async def test_binary_files_stdin_and_both_streams(sandbox: DockerSandbox) -> None:
    blob = bytes(range(256)) * 64
    code = (
        "import sys, hashlib\n"
        "data = open('dir/sub/blob.bin', 'rb').read()\n"
        "sys.stdout.buffer.write(hashlib.sha256(data).hexdigest().encode() + b'\\n')\n"
        "sys.stderr.buffer.write(sys.stdin.buffer.read()[::-1])\n"
    )
    r = await sandbox.run(
        ["python3", "m é.py"],
        files={"m é.py": code.encode(), "dir/sub/blob.bin": blob},
        stdin=b"\x00\n\xffxyz",
    )
    assert r.ok, r
    assert r.stdout == hashlib.sha256(blob).hexdigest() + "\n"
    assert r.stderr == "zyx\ufffd\n\x00"  # the bytes reversed, invalid UTF-8 replaced


async def test_both_streams_capped_with_totals(sandbox: DockerSandbox) -> None:
    code = "import sys; sys.stdout.write('o' * 300000); sys.stderr.write('e' * 200000)"
    r = await sandbox.run(["python3", "-c", code], limits=Limits(output_bytes=1000))
    assert r.ok and r.stdout == "o" * 1000 and r.stderr == "e" * 1000
    assert r.stdout_truncated and r.stderr_truncated


async def test_large_stdin_the_code_never_reads(sandbox: DockerSandbox) -> None:
    r = await sandbox.run(["python3", "-c", "print('done')"], stdin=b"x" * (4 << 20))
    assert r.ok and r.stdout == "done\n"


def test_request_framing() -> None:
    req = encode_request(["echo", "a\nb"], {"./d//f.txt": b"#!x"}, b"in", Limits(timeout_s=2))
    head, _, rest = req.partition(b"\n")
    assert head.split() == [b"2.0", b"1.0", str(Limits().output_bytes).encode(), b"2", b"1", b"2"]
    assert rest == b"4\necho3\na\nb" + b"7 3 493\nd/f.txt#!x" + b"in"
