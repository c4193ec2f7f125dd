"""Run ``consentry demo`` as a subprocess on free loopback ports and read its banner."""

from __future__ import annotations

import os
import queue
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

LOGIN = re.compile(r"demo login\s+(\S+) / (\S+)")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery"  # the root conftest's password for every account


def signup(server: Any, name: str = "Test User") -> str:
    """A new account through the signup page (a CLI process costs seconds on a busy host)."""
    email = f"u{secrets.token_hex(6)}@example.com"
    with httpx.Client(base_url=server.url, timeout=30) as b:
        csrf = CSRF.search(b.get("/signup").text)
        assert csrf
        r = b.post(
            "/signup",
            data={"email": email, "password": PASSWORD, "name": name, "csrf_token": csrf.group(1)},
        )
        assert r.status_code == 303, r.text
    return email


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Demo:
    proc: subprocess.Popen[str]
    folder: Path
    port: int
    app_port: int
    output: list[str] = field(default_factory=list)
    email: str = ""
    password: str = ""

    @property
    def provider_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def text(self) -> str:
        return "".join(self.output)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        """Send ``sig`` (Ctrl-C by default) and return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


def start_demo(folder: Path, *, port: int | None = None, app_port: int | None = None,
               timeout: float = 60) -> Demo:  # fmt: skip
    """Start the demo and wait until it prints the demo login (both servers answer then)."""
    port, app_port = port or free_port(), app_port or free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CONSENTRY_", "MYTEMPLATEMAKER_"))}  # fmt: skip
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "consentry.cli", "demo", "--dir", str(folder),
         "--port", str(port), "--app-port", str(app_port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    demo = Demo(proc, folder, port, app_port)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            demo.output.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            demo.stop(signal.SIGTERM)
            raise RuntimeError(f"the demo did not start in {timeout} s:\n{demo.text}") from None
        if line is None:
            raise RuntimeError(f"the demo exited ({proc.wait()}):\n{demo.text}")
        found = LOGIN.search(line)
        if found:
            demo.email, demo.password = found.group(1), found.group(2)
            # the banner's last lines follow at once
            time.sleep(0.2)
            return demo
