"""Running a command in a real pseudo-terminal, as a person at an 80-column terminal
would see it: what it prints (escape codes removed), how it ends, and Ctrl-C."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import termios
import time
from collections.abc import Sequence

import attrs

#: Hang guard for a command in the terminal (seconds of wall time).
DEADLINE = 120.0

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]")


@attrs.frozen
class Screen:
    """What a command left on the terminal, and how it ended."""

    raw: str
    status: int

    @property
    def text(self) -> str:
        """The output without escape codes, with each carriage-return rewrite resolved to
        the line's last version (a progress bar redraws its line in place)."""
        lines = []
        for line in _ESCAPE.sub("", self.raw).replace("\r\n", "\n").split("\n"):
            lines.append(line.split("\r")[-1])
        return "\n".join(lines)

    @property
    def lines(self) -> list[str]:
        """The lines of :attr:`text`."""
        return self.text.split("\n")


def run_in_terminal(
    argv: Sequence[str],
    *,
    columns: int = 80,
    interrupt_when: str | None = None,
    env: dict[str, str] | None = None,
) -> Screen:
    """Run *argv* in a pseudo-terminal *columns* wide and return what it printed.

    Args:
      argv: the command.
      columns: the terminal's width.
      interrupt_when: type Ctrl-C once this text has appeared in the output.
      env: extra environment variables.
    """
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command, with the terminal as its stdio
        os.environ.update(env or {})
        os.environ.update({"COLUMNS": str(columns), "LINES": "40", "TERM": "xterm-256color"})
        os.environ.pop("NO_COLOR", None)
        os.execvp(argv[0], list(argv))
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    output = b""
    interrupted = interrupt_when is None
    deadline = time.monotonic() + DEADLINE
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # the command has exited and the terminal closed
                break
            if not data:
                break
            output += data
            if interrupt_when is not None and not interrupted:
                if interrupt_when not in output.decode("utf-8", "replace"):
                    continue
                os.write(fd, b"\x03")  # what Ctrl-C sends; the terminal makes it SIGINT
                interrupted = True
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return Screen(output.decode("utf-8", "replace"), os.waitstatus_to_exitcode(status))
