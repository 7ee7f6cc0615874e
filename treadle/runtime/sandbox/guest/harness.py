"""The test harness that runs inside the sandbox for the `test` and `program` operators.

This file is shipped into the container as a script (it never runs on the host's own
interpreter), so it uses the standard library only.

Why two processes: the verdict must come through a channel the code under test cannot write,
and the tests must stay where the code cannot read them. This process (the judge) gets the
tests, the entry point and the trusted preamble (the prompt's own definitions) on its stdin,
never from a file, makes itself non-dumpable, and has the solution loaded in a separate process
that serves calls over two pipes. In the Docker sandbox that process is started by the agent
from its zygote (a clean interpreter that never held any request) as a uid other than the
judge's, so it can neither signal, trace nor read the judge; in the process sandbox the judge
forks it (no isolation there). The solution's process never holds the judge's stdout, which
carries the verdict. The tests run here, in the judge: names the tests use that the preamble
defines are the preamble's; `candidate` and every other name the tests take from the solution
is a proxy, and what crosses back from the solution is plain data only (None, bools, numbers,
strings, bytes, tuples, lists, dicts and sets of exactly those types, decoded here by a strict
reader, never by marshal) or a reference to an object that stays in the solution's process
(its attributes and methods are called there; it equals only itself and has no truth value),
so a value whose `__eq__` always answers True, a fake result line on stdout, `os._exit(0)` or
a redefined helper can only ever fail a test.

Usage inside the sandbox: `python3 -I -S harness.py test PER_TEST` reads the marshalled dict
{solution, tests, entry_point, preamble} on stdin; `python3 -I -S harness.py program PER_TEST
ENTRY` runs solution.py's entry function; `harness.py worker MODE` is the solution's process.
The result is the last stdout line, prefixed with MARKER.
"""

import ast
import marshal
import os
import select
import sys

try:
    import _socket
except ImportError:  # no unix sockets: only the process sandbox's own forks
    _socket = None  # type: ignore[assignment]

# the interpreter's built-in modules, not `signal`, `json` and `traceback`: those import enum,
# re and linecache from the image's disk, which a fresh container pays for on every run
try:
    import _signal as signal
except ImportError:  # another Python implementation
    import signal

MARKER = "\x1etreadle-result "
_PRINT_CAP = 4000
_VALUE_CAP = 300
_MSG_CAP = 16 << 20
_PLAIN = (type(None), bool, int, float, complex, str, bytes)
_CONTAINERS = (tuple, list, set, frozenset)
PR_SET_DUMPABLE = 4
#: the child's descriptors for the calls it receives and the replies it sends
_REQ_FD, _REP_FD = 3, 4
#: marks an argument that is one of the solution's own objects (a reference number)
_REF = "\x00treadle-ref"
#: the socket to the sandbox's agent, which starts the solution's processes (None: fork them)
_AGENT = None


class _Capped:
    def __init__(self):
        self.parts = []
        self.size = 0

    def write(self, s):
        if self.size < _PRINT_CAP:
            s = s[: _PRINT_CAP - self.size]
            self.parts.append(s)
            self.size += len(s)
        return len(s)

    def flush(self):
        pass

    def getvalue(self):
        return "".join(self.parts)


class _TestTimeout(Exception):
    pass


class _Died(Exception):
    """The solution's process ended or broke the protocol during a call."""


def _alarm(signum, frame):
    raise _TestTimeout()


def _short(value):
    try:
        text = repr(value)
    except BaseException:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= _VALUE_CAP else text[:_VALUE_CAP] + "..."


def _where(exc):
    import traceback

    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename in ("solution.py", "<solution>"):
            return f" (solution line {frame.lineno}: {(frame.line or '').strip()})"
    return ""


def _error_line(exc):
    if isinstance(exc, _TestTimeout):
        return "timed out"
    where = getattr(exc, "_treadle_where", None)
    if where is None:
        where = _where(exc)
    return f"{type(exc).__name__}: {exc}{where}"


# ---------------------------------------------------------------------- framing


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _send(fd, obj):
    data = marshal.dumps(obj, 2)  # version 2: no back-references, what _decode reads
    _write_all(fd, len(data).to_bytes(4, "big") + data)


class _Garbled(Exception):
    pass


def _decode(data):
    """Plain data from marshal format 2 (None, bools, ints, floats, complex, bytes, str, tuple,
    list, dict, set, frozenset): the solution writes these bytes, and marshal.loads is not
    safe for bytes an adversary wrote."""
    view = memoryview(data)
    end = len(data)
    pos = 0

    def take(n):
        nonlocal pos
        if n < 0 or pos + n > end:
            raise _Garbled("truncated")
        chunk = view[pos : pos + n]
        pos += n
        return chunk

    def size():
        n = int.from_bytes(take(4), "little", signed=True)
        if n < 0 or n > end - pos:
            raise _Garbled("bad size")
        return n

    def one(depth):
        if depth > 200:
            raise _Garbled("too deep")
        kind = take(1)[0]
        if kind == 0x4E:  # N
            return None
        if kind == 0x54:  # T
            return True
        if kind == 0x46:  # F
            return False
        if kind == 0x69:  # i
            return int.from_bytes(take(4), "little", signed=True)
        if kind == 0x6C:  # l: 15-bit digits, the sign in the count
            n = int.from_bytes(take(4), "little", signed=True)
            if abs(n) > 100000:
                raise _Garbled("int too large")
            value = 0
            for i in range(abs(n)):
                digit = int.from_bytes(take(2), "little")
                if digit >> 15:
                    raise _Garbled("bad digit")
                value |= digit << (15 * i)
            return -value if n < 0 else value
        if kind == 0x67:  # g
            return take(8).cast("d")[0]
        if kind == 0x79:  # y
            real, imag = take(16).cast("d")
            return complex(real, imag)
        if kind == 0x73:  # s
            return bytes(take(size()))
        if kind == 0x75:  # u
            return str(take(size()), "utf-8", "surrogatepass")
        if kind in (0x28, 0x5B, 0x3C, 0x3E):  # ( [ < >
            items = [one(depth + 1) for _ in range(size())]
            return {0x28: tuple, 0x5B: list, 0x3C: set, 0x3E: frozenset}[kind](items)
        if kind == 0x7B:  # {, pairs until 0
            out = {}
            while view[pos : pos + 1] != b"0":
                key = one(depth + 1)
                out[key] = one(depth + 1)
            take(1)
            return out
        raise _Garbled(f"type {kind:#x}")

    try:
        value = one(0)
    except (_Garbled, TypeError, ValueError, RecursionError) as exc:
        raise _Garbled(str(exc)) from None
    if pos != end:
        raise _Garbled("trailing bytes")
    return value


def _read_exact(fd, n):
    parts = []
    while n > 0:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def _plain(value, depth=0):
    """Whether value is plain data all the way down (exact types, no code objects)."""
    t = type(value)
    if t in _PLAIN:
        return True
    if depth > 100:
        return False
    if t in _CONTAINERS:
        return all(_plain(v, depth + 1) for v in value)
    if t is dict:
        return all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in value.items())
    return False


# ---------------------------------------------------------------------- the solution's side


def _child(mode):
    """Load the solution, then serve the judge's requests until it closes the pipe."""
    sys.path.insert(0, os.getcwd())  # a solution may import files of the work dir
    sys.stdin = open(os.devnull)  # noqa: SIM115
    ns: dict = {"__name__": "__main__" if mode == "test" else "solution"}

    def error(exc):
        detail = ""
        if mode == "program":
            import traceback

            detail = "".join(traceback.format_exception(exc)[-6:])
        try:
            text = str(exc)[:2000]
        except BaseException:
            text = "<unprintable>"
        return ("raise", type(exc).__name__, text, _where(exc), detail[:2000])

    handles: dict = {}  # objects of the solution the judge holds a reference to

    def ref(value):
        handles[len(handles) + 1] = value
        return ("ref", len(handles), type(value).__name__[:100], _short(value))

    def resolve(value):
        if type(value) is tuple and len(value) == 2 and value[0] == _REF:
            return handles[value[1]]
        return value

    def reply(msg):
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        if msg[0] == "ok" and not _plain(msg[1]):  # an object: the judge gets a reference
            msg = ref(msg[1])
        try:
            _send(_REP_FD, msg)
        except (ValueError, TypeError, OverflowError):
            _send(_REP_FD, ("raise", "TypeError", "the reply could not be sent", "", ""))

    try:
        with open("solution.py") as f:
            source = f.read()
        exec(compile(source, "solution.py", "exec"), ns)
        reply(("ok", None))
    except BaseException as exc:
        reply(error(exc))
        return
    while True:
        try:
            size = int.from_bytes(_read_exact(_REQ_FD, 4), "big")
            msg = marshal.loads(_read_exact(_REQ_FD, size))
        except EOFError:
            return
        if msg[0] == "names":
            found: dict = {}
            for name in msg[1]:
                if name not in ns:
                    continue
                v = ns[name]
                if type(v) is type(sys):
                    found[name] = ("module", v.__name__)
                elif callable(v):
                    found[name] = ("callable",)
                elif _plain(v):
                    found[name] = ("value", v)
                else:
                    found[name] = ref(v)
            reply(("ok", found))
            continue
        try:
            if msg[0] == "getattr":
                value = getattr(handles[msg[1]], msg[2])
            else:
                _, target, args, kwargs = msg
                fn = ns[target] if type(target) is str else handles[target]
                args = [resolve(a) for a in args]
                kwargs = {k: resolve(v) for k, v in kwargs.items()}
                value = fn(*args, **kwargs)
        except BaseException as exc:
            reply(error(exc))
            continue
        reply(("ok", value))


class _Ref:
    """An object of the solution, held in the solution's process: attributes and calls go
    there, and only plain data (or another reference) comes back. It equals nothing but
    itself and has no truth value, so it can never satisfy `candidate(x) == expected`."""

    def __init__(self, solution, gen, hid, type_name, text):
        self._solution = solution
        self._gen = gen
        self._hid = hid
        self.type_name = str(type_name)
        self.text = str(text)

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return self._solution.fetch(("getattr", self._hid, attr), self._gen)

    def __call__(self, *args, **kwargs):
        return self._solution.call(self._hid, args, kwargs, self._gen)

    def __repr__(self):
        return self.text

    def __bool__(self):
        raise TypeError(f"a {self.type_name} of the solution has no truth value here")


def _remote_error(type_name, message, where, detail):
    import builtins

    cls = getattr(builtins, str(type_name), None)
    exc = None
    # never StopIteration: raised through the tests' map() or for, it would end the iteration
    # as if every item had been checked
    if (
        isinstance(cls, type)
        and issubclass(cls, Exception)
        and not issubclass(cls, (StopIteration, StopAsyncIteration))
    ):
        try:
            exc = cls(str(message))
        except BaseException:
            exc = None
    if exc is None:
        exc = type(str(type_name)[:100], (Exception,), {})(str(message))
    setattr(exc, "_treadle_where", str(where))  # noqa: B010 - an Exception's own attribute
    setattr(exc, "_treadle_detail", str(detail))  # noqa: B010
    return exc


class _Solution:
    """The judge's handle on the solution's process: start it, call into it, stop it."""

    def __init__(self, mode):
        self.mode = mode
        self.pid = 0
        self.gen = 0  # bumped at each start: references die with their process
        self.printed = _Capped()
        self.load_error = None
        self.asked = 0  # the number of the last message to the agent (its answer echoes it)

    def start(self):
        self.gen += 1
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            if _AGENT is not None:
                self._ask_agent(b"w", self.mode.encode(), [out_w, req_r, rep_w])
                self.pid = -1  # the agent's: only the agent can signal it
            else:
                self.pid = self._fork(req_r, rep_w, out_w)
        finally:
            for fd in (req_r, rep_w, out_w):
                os.close(fd)
        self.req, self.rep, self.out = req_w, rep_r, out_r
        reply = self._reply()
        if reply[0] == "raise":
            self.load_error = f"{reply[1]}: {reply[2]}{reply[3]}"
            self.load_detail = reply[4]
        return reply

    def _ask_agent(self, kind, args=b"", fds=()):
        """The agent starts (`w`) or kills (`k`) the solution's processes, as their uid. Each
        message is numbered and the agent's answer echoes the number: a per-test timeout that
        interrupts the wait leaves its answer behind, and the next exchange skips it instead
        of taking it for its own."""
        agent = _AGENT
        if agent is None:
            raise _Died("no agent to start the solution's process")
        self.asked += 1
        number = b"%d" % self.asked
        anc = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, _fd_bytes(fds))] if fds else []
        agent.sendmsg([b" ".join((kind, number, args))], anc)
        while True:
            answer = agent.recv(64).split()
            if not answer:
                raise _Died("the sandbox's agent closed its socket")
            if answer[1:] == [number]:
                break
        if answer[0] != kind:
            raise _Died("the sandbox could not start the solution's process")

    def _fork(self, req_r, rep_w, out_w):
        """The process sandbox's way (no agent, one uid): a fork of this process."""
        null = os.open(os.devnull, os.O_RDWR)
        pid = os.fork()
        if pid == 0:
            try:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
                wanted = (null, out_w, out_w, req_r, rep_w)
                high = [os.dup2(fd, 200 + i) for i, fd in enumerate(wanted)]
                for i, fd in enumerate(high):
                    os.dup2(fd, i)
                os.closerange(len(wanted), 65536)
                sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
                sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
                _child(self.mode)
            except BaseException:
                pass
            os._exit(0)
        os.close(null)
        return pid

    def _reply(self):
        """The child's next reply, draining its output meanwhile; _Died when there is none."""
        poller = select.poll()
        poller.register(self.rep, select.POLLIN)
        if self.out >= 0:
            poller.register(self.out, select.POLLIN)
        buf = b""
        need = 4
        size = -1
        while True:
            for fd, _ev in poller.poll():
                chunk = os.read(fd, 1 << 16)
                if fd == self.out:
                    if chunk:
                        self.printed.write(chunk.decode("utf-8", "replace"))
                    else:
                        poller.unregister(fd)
                        os.close(self.out)
                        self.out = -1
                    continue
                if not chunk:
                    raise _Died("the solution's process ended")
                buf += chunk
                if size < 0 and len(buf) >= 4:
                    size = int.from_bytes(buf[:4], "big")
                    if size > _MSG_CAP:
                        raise _Died("the solution's reply is too large")
                    need = 4 + size
                if size >= 0 and len(buf) >= need:
                    try:
                        msg = _decode(buf[4:need])
                    except _Garbled as exc:
                        raise _Died("the solution's reply was garbled") from exc
                    if type(msg) is not tuple or not msg or type(msg[0]) is not str:
                        raise _Died("the solution's reply was garbled")
                    if msg[0] == "ok" and len(msg) == 2 and _plain(msg[1]):
                        return msg
                    if msg[0] == "ref" and len(msg) == 4 and _plain(msg) and type(msg[1]) is int:
                        return msg
                    if msg[0] == "raise" and len(msg) == 5 and _plain(msg):
                        return msg
                    raise _Died("the solution's reply was garbled")

    def request(self, msg):
        """Send a request and return the child's reply; a timeout or a broken child kills it
        (the next request starts a fresh one)."""
        if not self.pid:
            self.start()
            if self.load_error:
                raise _Died(f"the solution failed to load again: {self.load_error}")
        try:
            _send(self.req, msg)
            return self._reply()
        except BaseException:
            self.stop()
            raise

    def _arg(self, value):
        if isinstance(value, _Ref):
            if value._solution is not self or value._gen != self.gen:
                raise _Died("an object of a solution process that has since been restarted")
            return (_REF, value._hid)
        return value

    def call(self, target, args, kwargs, gen=None):
        """Call the solution's function `target` (a name) or object (a reference number)."""
        args = tuple(self._arg(a) for a in args)
        kwargs = {k: self._arg(v) for k, v in kwargs.items()}
        try:
            marshal.dumps((args, kwargs))
        except ValueError:
            raise TypeError(
                f"cannot pass these arguments to the solution: {_short(args)}"
            ) from None
        return self.fetch(("call", target, args, kwargs), gen)

    def fetch(self, msg, gen=None):
        if gen is not None and (gen != self.gen or not self.pid):
            raise _Died("an object of a solution process that has since been restarted")
        try:
            reply = self.request(msg)
        except (_Died, OSError) as exc:
            raise _Died(str(exc)) from None
        return self.value(reply)

    def value(self, reply):
        if reply[0] == "ok":
            return reply[1]
        if reply[0] == "ref":
            return _Ref(self, self.gen, reply[1], reply[2], reply[3])
        raise _remote_error(*reply[1:])

    def close(self):
        """Done with the solution: closing its request pipe ends it (in the sandbox, the
        agent kills whatever is left of the run anyway); no kill and wait on the way out."""
        if self.pid:
            os.close(self.req)
            self.pid = 0

    def stop(self):
        if not self.pid:
            return
        try:
            if self.pid > 0:
                os.kill(self.pid, 9)
            else:
                self._ask_agent(b"k")
        except (OSError, _Died):
            pass
        for fd in (self.req, self.rep, self.out):
            if fd >= 0:
                try:  # noqa: SIM105 - contextlib is read from disk
                    os.close(fd)
                except OSError:
                    pass
        if self.pid > 0:
            try:  # noqa: SIM105 - contextlib is read from disk
                os.waitpid(self.pid, 0)
            except OSError:
                pass
        self.pid = 0
        self.out = -1


def _fd_bytes(fds):
    return b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)


class _Proxy:
    """A function of the solution, called in the solution's process."""

    def __init__(self, solution, name):
        self._solution = solution
        self.__name__ = name

    def __call__(self, *args, **kwargs):
        return self._solution.call(self.__name__, args, kwargs)

    def __repr__(self):
        return f"<solution function {self.__name__}>"


def _bind(solution, names, ns):
    """Put the solution's names that the tests use into the tests' namespace. Only the names
    asked for (the solution's process writes the reply: an extra name could replace the
    preamble's helper), and never over a builtin: a solution's own `abs` or `isinstance` must
    not answer for the tests' checks."""
    import builtins

    if not names:
        return {}
    reply = solution.request(("names", sorted(names)))
    found = reply[1] if reply[0] == "ok" and type(reply[1]) is dict else {}
    for name, info in found.items():
        if type(name) is not str or type(info) is not tuple or not info:
            continue
        if name not in names or name in builtins.__dict__:
            continue
        if info[0] == "callable":
            ns[name] = _Proxy(solution, name)
        elif info[0] == "value" and len(info) == 2:
            ns[name] = info[1]
        elif info[0] == "module" and len(info) == 2 and info[1] == name:
            # the judge imports the module itself (the work dir is not on its path)
            try:  # noqa: SIM105 - contextlib is read from disk
                ns[name] = __import__(info[1])
            except BaseException:
                pass
        elif info[0] == "ref" and len(info) == 4 and type(info[1]) is int:
            ns[name] = solution.value(info)
    return found


# ---------------------------------------------------------------------- the judge's side


def _explain(node, ns, source):
    """For `assert a == b`, say what a was: the feedback a model can act on."""
    text = ast.get_source_segment(source, node) or ast.unparse(node)
    test = node.test
    if (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Eq | ast.Is)
    ):
        try:
            left = eval(compile(ast.Expression(test.left), "<tests>", "eval"), ns)
            right = eval(compile(ast.Expression(test.comparators[0]), "<tests>", "eval"), ns)
            return f"{text}  -> got {_short(left)}, expected {_short(right)}"
        except BaseException as exc:
            return f"{text}  -> {_error_line(exc)}"
    return f"{text}  -> assertion failed"


def _label(node, source):
    """A statement's first line (only for failures: get_source_segment splits the whole
    source on every call)."""
    return (ast.get_source_segment(source, node) or ast.unparse(node)).splitlines()[0]


def _run_statements(stmts, ns, source, per_test, results):
    """Each assert is one test; other statements run as setup (and fail as a test if they raise)."""
    for node in stmts:
        mod = ast.Module(body=[node], type_ignores=[])
        is_test = isinstance(node, ast.Assert) or (
            isinstance(node, ast.For | ast.While | ast.With | ast.If | ast.Expr)
            and any(isinstance(n, ast.Assert | ast.Call) for n in ast.walk(node))
        )
        signal.setitimer(signal.ITIMER_REAL, per_test)
        try:
            exec(compile(mod, "<tests>", "exec"), ns)
            if is_test:
                results.append(None)
        except AssertionError as exc:
            signal.setitimer(signal.ITIMER_REAL, 0)
            if isinstance(node, ast.Assert):
                signal.setitimer(signal.ITIMER_REAL, per_test)
                results.append(_explain(node, ns, source))
            else:
                msg = f": {exc}" if str(exc) else ""
                results.append(f"{_label(node, source)}  -> assertion failed{msg}")
        except BaseException as exc:
            results.append(f"{_label(node, source)}  -> {_error_line(exc)}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _read(name):
    with open(name) as f:
        return f.read()


def _loaded(solution, per_test):
    """Start the solution's process; its load error, or None."""
    signal.setitimer(signal.ITIMER_REAL, per_test)
    try:
        solution.start()
    except _TestTimeout:
        solution.stop()
        return "timed out while loading"
    except (_Died, OSError) as exc:
        solution.stop()
        return f"{exc}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return solution.load_error


def _used_names(*trees):
    """The names the tests read and never bind themselves: the ones they may take from the
    solution. The request for them reaches the solution, so it never lists the tests' own
    variables (`expected_42 = 42` would tell it the answer)."""
    read: set[str] = set()
    bound: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                bound.add(node.name)
            elif isinstance(node, ast.alias):
                bound.add((node.asname or node.name).split(".")[0])
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                bound.add(node.name)
    return read - bound


def _stub(node):
    """A definition with nothing in it but a docstring, `pass` or `...`: the signature the
    solution must fill in (HumanEval's prompt ends with one), not a trusted helper."""
    body = node.body
    return all(
        isinstance(n, ast.Pass) or (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
        for n in body
    )


def _run_preamble(preamble, entry, ns, per_test):
    """Run the trusted preamble (the prompt) in the tests' namespace; the names it defines
    (not its stubs, not the entry point) are the preamble's, never the solution's. Returns
    (those names, an error or None)."""
    try:
        tree = ast.parse(preamble)
    except (SyntaxError, ValueError) as exc:
        return set(), f"the trusted preamble does not parse: {exc}"
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    body = [n for n in tree.body if not (isinstance(n, defs) and (n.name == entry or _stub(n)))]
    before = set(ns)
    signal.setitimer(signal.ITIMER_REAL, per_test)
    try:
        exec(compile(ast.Module(body=body, type_ignores=[]), "<preamble>", "exec"), ns)
    except BaseException as exc:
        return set(), f"the trusted preamble failed: {_error_line(exc)}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return set(ns) - before, None


def run_tests(solution, per_test, job):
    source = str(job.get("solution") or "")
    tests = str(job.get("tests") or "")
    entry = str(job.get("entry_point") or "").strip() or None
    preamble = str(job.get("preamble") or "")
    results: list = []
    try:
        tree = ast.parse(tests)
    except SyntaxError as exc:
        return {"load_error": f"the tests do not parse: {exc}", "results": results}
    check = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None
    )
    if check is not None and entry is None:
        try:
            funcs = [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            funcs = []
        entry = funcs[-1] if funcs else None
    ns: dict = {"__name__": "__main__"}
    trusted: set = set()
    if preamble:
        trusted, error = _run_preamble(preamble, entry, ns, per_test)
        if error:
            return {"load_error": error, "results": results}
    error = _loaded(solution, per_test)
    if error:
        return {"load_error": error, "results": results}
    wanted = (_used_names(tree) - trusted) | ({entry} if entry else set())
    signal.setitimer(signal.ITIMER_REAL, per_test)
    try:
        found = _bind(solution, wanted, ns)
    except BaseException as exc:
        return {"load_error": f"the solution stopped answering: {_error_line(exc)}"}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if check is None:  # plain asserts at top level
        _run_statements(tree.body, ns, tests, per_test, results)
        return {"results": results}
    # HumanEval style: everything but check() (its asserts count too), then check's body with
    # candidate bound
    setup = [n for n in tree.body if n is not check]
    _run_statements(setup, ns, tests, per_test, results)
    if entry is None or found.get(entry, ("",))[0] != "callable":
        return {"load_error": f"the solution does not define `{entry}`", "results": results}
    ns["candidate"] = _Proxy(solution, entry)
    params = [a.arg for a in check.args.args]
    if params and params[0] != "candidate":
        ns[params[0]] = ns["candidate"]
    _run_statements(check.body, ns, tests, per_test, results)
    return {"results": results}


def _dumps(value):
    """json.dumps(value) for None, bools, ints, strings, lists and string-keyed dicts, without
    importing json (whose import costs more than the rest of a typical test run)."""
    try:
        from _json import encode_basestring_ascii as quote
    except ImportError:
        quote = None  # type: ignore[assignment]
    parts = []

    def put(v):
        if v is None:
            parts.append("null")
        elif v is True or v is False:
            parts.append("true" if v else "false")
        elif type(v) is int:
            parts.append(int.__repr__(v))
        elif type(v) is str and quote is not None:
            parts.append(quote(v))
        elif type(v) is list:
            parts.append("[")
            for i, item in enumerate(v):
                if i:
                    parts.append(", ")
                put(item)
            parts.append("]")
        elif type(v) is dict and all(type(k) is str for k in v):
            parts.append("{")
            for i, (k, item) in enumerate(v.items()):
                if i:
                    parts.append(", ")
                put(k)
                parts.append(": ")
                put(item)
            parts.append("}")
        else:
            import json

            parts.append(json.dumps(v))

    put(value)
    return "".join(parts)


def run_program(solution, entry, per_test):
    error = _loaded(solution, per_test)
    if error:
        detail = getattr(solution, "load_detail", "")
        return {"error": f"{error}\n{detail}"[:2000]}
    signal.setitimer(signal.ITIMER_REAL, per_test)
    try:
        found = _bind(solution, {entry}, {})
        if found.get(entry, ("",))[0] != "callable":
            return {"error": f"the code does not define `{entry}()`"}
        value = solution.call(entry, (), {})
    except BaseException as exc:
        detail = getattr(exc, "_treadle_detail", "")
        return {"error": f"{_error_line(exc)}\n{detail}"[:2000]}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if isinstance(value, _Ref):
        return {"value": value.text}
    import json

    try:
        json.dumps(value)
    except (TypeError, ValueError):
        value = repr(value)
    return {"value": value}


def _protect():
    """Non-dumpable: /proc/PID/fd, /proc/PID/mem and ptrace of this process are closed to the
    solution's process, which runs as the same uid."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")


def _read_job():
    """The judge's inputs, marshalled by the host on stdin (trusted: the solution never holds
    this process's stdin)."""
    parts = []
    while chunk := os.read(0, 1 << 20):
        parts.append(chunk)
    data = b"".join(parts)
    job = marshal.loads(data) if data else {}
    return job if type(job) is dict else {}


def main():
    global _AGENT
    mode = sys.argv[1]
    if mode == "worker":  # the solution's process, started by the agent
        _child(sys.argv[2] if len(sys.argv) > 2 else "test")
        return
    # the judge imports nothing from the work dir, which the solution can write
    here = os.path.dirname(os.path.abspath(sys.argv[0]))
    cwd = os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", ".", here, cwd)]
    per_test = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    sys.setrecursionlimit(10000)
    real_stdout = sys.stdout
    captured = _Capped()
    solution = _Solution(mode)
    try:
        _protect()
        agent_fd = os.environ.get("TREADLE_JUDGE_FD")
        if agent_fd and _socket is not None:
            _AGENT = _socket.socket(fileno=int(agent_fd))
        signal.signal(signal.SIGALRM, _alarm)
        sys.stdout = captured  # the tests' own prints (they run here)
        if mode == "test":
            result = run_tests(solution, per_test, _read_job())
        else:
            result = run_program(solution, sys.argv[3] if len(sys.argv) > 3 else "solve", per_test)
    except BaseException as exc:
        note = f"the harness failed: {type(exc).__name__}: {exc}"
        result = {"load_error": note, "error": note}
    finally:
        sys.stdout = real_stdout
        solution.close()
    result["printed"] = (solution.printed.getvalue() + captured.getvalue())[:_PRINT_CAP]
    _write_all(1, ("\n" + MARKER + _dumps(result) + "\n").encode())


if __name__ == "__main__":
    main()
