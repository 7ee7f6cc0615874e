"""The judge's exchange with the agent that starts the solution's processes, against a stand-in
agent on a socket pair (the harness's own code, run here): a per-test timeout that fires while
the judge waits for an answer must not leave that answer to be taken for the next one's."""

from __future__ import annotations

import array
import signal
import socket
import threading
import time
import types

import pytest

from treadle.runtime.sandbox.guest_code import HARNESS_SOURCE


def _harness() -> types.ModuleType:
    module = types.ModuleType("harness")
    exec(compile(HARNESS_SOURCE, "harness.py", "exec"), module.__dict__)
    return module


def _stand_in_agent(harness: types.ModuleType, sock: socket.socket, late_s: float) -> None:
    """Answer each message as the agent does (its kind and number); for a start, load the
    solution at once (the loaded reply on the reply pipe). The first answer comes `late_s` late."""
    late = late_s
    while True:
        fds = array.array("i")
        data, anc, _flags, _addr = sock.recvmsg(512, socket.CMSG_SPACE(3 * fds.itemsize))
        if not data:
            return
        for _level, _kind, raw in anc:
            fds.frombytes(raw[: len(raw) - len(raw) % fds.itemsize])
        words = data.split()
        if words[0] == b"w" and len(fds) == 3:
            _out, _req, rep = fds
            harness._send(rep, ("ok", None))
        for fd in fds:
            socket.close(fd)
        time.sleep(late)
        late = 0.0
        sock.send(b" ".join(words[:2]))


def test_an_answer_left_by_a_timeout_is_not_taken_for_the_next_one() -> None:
    harness = _harness()
    judge_end, agent_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    agent = threading.Thread(target=_stand_in_agent, args=(harness, agent_end, 0.3))
    agent.start()
    harness._AGENT = judge_end
    before = signal.signal(signal.SIGALRM, harness._alarm)
    try:
        solution = harness._Solution("test")
        signal.setitimer(signal.ITIMER_REAL, 0.05)  # fires while the first answer is awaited
        with pytest.raises(harness._TestTimeout):
            solution.start()
        signal.setitimer(signal.ITIMER_REAL, 0)
        # a restart, a kill, a restart: each must get its own answer, not the one before
        assert solution.start() == ("ok", None)
        solution.stop()
        assert solution.start() == ("ok", None)
        solution.stop()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)
        judge_end.close()
        agent.join(5)
        agent_end.close()
    assert not agent.is_alive()
