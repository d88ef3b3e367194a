"""Run an emulator server as a child process: start it, learn its port, wait until it answers, stop it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path


class HarnessError(RuntimeError):
    """An emulator could not be started, or the harness was used wrongly."""


# Variables that could point a child, or a client built from its environment, at a real AWS account.
AWS_VARIABLES_TO_DROP = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_IAM",
    "AWS_ENDPOINT_URL_STS",
)


def child_pids(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (Linux /proc): the operator's reconcile processes, say."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # after the ")" ending the command name: state is field 0, ppid field 1
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def scrubbed_environ(extra: Mapping[str, str] = {}) -> dict[str, str]:
    """This process's environment without anything that could reach real AWS, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if key not in AWS_VARIABLES_TO_DROP}
    env.update(extra)
    return env


class ServerProcess:
    """A child that serves HTTP on 127.0.0.1 and writes the port it bound to `--port-file`.

    The child binds port 0 itself, so there is no race for a "free" port. Its output goes to a log file
    (never a pipe, which could fill up and block it); the tail of that log is put into every startup error.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        probe_path: str,
        startup_timeout: float = 30.0,
    ) -> None:
        self.name = name
        self._argv = list(argv)
        self._env = dict(env)
        self._probe_path = probe_path
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise HarnessError(f"the {self.name} server is not running")
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path | None:
        return None if self._workdir is None else self._workdir / "server.log"

    def start(self) -> str:
        if self._process is not None:
            raise HarnessError(f"the {self.name} server is already running")
        self._workdir = Path(tempfile.mkdtemp(prefix=f"bucketwarden-{self.name}-"))
        port_file = self._workdir / "port"
        argv = [sys.executable, *self._argv, "--port-file", str(port_file), "--parent-pid", str(os.getpid())]
        with open(self._workdir / "server.log", "wb") as log:
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
                # Its own session: a Ctrl-C in the terminal must not kill the server under the demo's cleanup.
                start_new_session=True,
            )
        try:
            self.port = self._wait_for_port(port_file)
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self, timeout: float = 5.0) -> None:
        process, self._process, self.port = self._process, None, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def _wait_for_port(self, port_file: Path) -> int:
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise HarnessError(f"the {self.name} server exited at startup:\n{self._log_tail()}")
            if port_file.exists():
                return int(port_file.read_text(encoding="utf-8"))
            time.sleep(0.05)
        raise HarnessError(f"the {self.name} server did not start in {self._startup_timeout} s:\n{self._log_tail()}")

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + self._probe_path, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # any HTTP answer, even an error, means it serves
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise HarnessError(f"the {self.name} server does not answer: {exc}\n{self._log_tail()}") from exc
                time.sleep(0.05)

    def _log_tail(self, lines: int = 30) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
