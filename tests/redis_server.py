"""A real ``redis-server`` for the tests: started on a free loopback port in a temporary
directory, with nothing saved to disk, and stopped and started again on the same port so a
test can take Redis away and bring it back.

Synchronous (a subprocess and a blocking socket), so trio tests and plain ones use it alike;
the fixtures in ``conftest.py`` start one per test and kill it afterwards.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

#: The executables tried, in order: Redis itself, then Valkey under its own name.
EXECUTABLES = ("redis-server", "valkey-server")

INSTALL_HINT = (
    "the Redis tests need a real redis-server on PATH and none was found. Install it: "
    "`sudo apt-get install redis-server` (Debian, Ubuntu), `brew install redis` (macOS), "
    "or Valkey (`valkey-server` is found too)"
)

#: Seconds a server has to answer PING after it is started.
START_DEADLINE = 10.0
#: Seconds between two attempts to reach a server that is starting.
POLL_INTERVAL = 0.01
#: Seconds a stopped server has to exit.
STOP_DEADLINE = 10.0


def launch(
    executable: str, directory: Path, password: str | None = None, attempts: int = 3
) -> RedisServer:
    """A started :class:`RedisServer`: another free port is tried when something else
    took the first one between :func:`free_port` and the start."""
    for attempt in range(attempts):
        server = RedisServer(executable, directory, password)
        try:
            server.start()
        except RuntimeError:
            if attempt + 1 < attempts and server._address_in_use():
                continue
            raise
        return server
    raise AssertionError("unreachable")


def find_redis_server() -> str | None:
    """The path of the first of :data:`EXECUTABLES` on PATH, or None."""
    for name in EXECUTABLES:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def require_redis_server() -> str:
    """The path of the Redis server executable; fails the test (never skips it) with
    :data:`INSTALL_HINT` when there is none."""
    executable = find_redis_server()
    if executable is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return executable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _command(*args: str) -> bytes:
    """*args* as one RESP command."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def ping(port: int, password: str | None = None, timeout: float = 1.0) -> bool:
    """Whether a Redis server on 127.0.0.1:*port* answers PING (after AUTH with *password*).

    False when nothing listens there; raises ``OSError`` for other socket errors only.
    """
    expected = b"+PONG\r\n"
    request = _command("PING")
    if password is not None:
        request = _command("AUTH", password) + request
        expected = b"+OK\r\n" + expected
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(request)
            reply = b""
            while len(reply) < len(expected):
                chunk = conn.recv(len(expected) - len(reply))
                if not chunk:
                    return False
                reply += chunk
    except (ConnectionRefusedError, ConnectionResetError):
        return False
    return reply == expected


class RedisServer:
    """One ``redis-server`` process on a fixed port, stopped and restarted at will.

    :attr:`url` is the URL a client connects with (``redis://127.0.0.1:PORT/0``, with the
    password in it when there is one).
    """

    def __init__(self, executable: str, directory: Path, password: str | None = None) -> None:
        self.executable = executable
        self.directory = directory
        self.password = password
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._starts = 0

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password is not None else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log(self) -> Path:
        """The log of the latest start (the server's stdout and stderr)."""
        return self.directory / f"redis-{self._starts}.log"

    def start(self) -> None:
        """Start the server on :attr:`port` and return once it answers PING.

        Raises ``RuntimeError``, with the server's log, when it exits or does not answer
        within :data:`START_DEADLINE` seconds.
        """
        if self.running:
            raise RuntimeError(f"redis-server is already running on port {self.port}")
        self._starts += 1
        args = [
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
        ]  # fmt: skip
        if self.password is not None:
            args += ["--requirepass", self.password]
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_DEADLINE
        while not ping(self.port, self.password, timeout=max(POLL_INTERVAL, 0.5)):
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"redis-server exited on start:\n{self._read_log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"redis-server did not answer PING on port {self.port} within "
                    f"{START_DEADLINE:g} s:\n{self._read_log()}"
                )
            time.sleep(POLL_INTERVAL)

    def stop(self, *, graceful: bool = False) -> None:
        """Kill the server (SIGKILL, as a crash would; SIGTERM when *graceful*) and wait
        for it to exit. Does nothing when it is not running."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
        try:
            process.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def freeze(self) -> None:
        """Stop the server answering without closing a connection (SIGSTOP), as a host
        lost behind a network fault looks to its clients; :meth:`thaw` resumes it."""
        assert self._process is not None, "the server is not running"
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """Resume a frozen server (SIGCONT)."""
        assert self._process is not None, "the server is not running"
        self._process.send_signal(signal.SIGCONT)

    def _address_in_use(self) -> bool:
        return "Address already in use" in self._read_log()

    def _read_log(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RedisServer {self.url} {state}>"
