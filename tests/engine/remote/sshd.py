"""A real OpenSSH server on localhost for the remote engine's tests, with its own host key,
one client key and a client config; skipped, saying why, where no sshd is installed."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD_CANDIDATES = ("sshd", "/usr/sbin/sshd")


@dataclass
class Sshd:
    """A running sshd: its alias in ``config`` and the ssh command that uses that config."""

    alias: str
    config: Path

    @property
    def ssh(self) -> str:
        return f"ssh -F {self.config}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_sshd(folder: Path) -> tuple[Sshd, subprocess.Popen]:
    """An sshd on a free localhost port that lets this user in with a key of ``folder``."""
    binary = next((found for name in SSHD_CANDIDATES if (found := shutil.which(name))), None)
    if binary is None:
        pytest.skip("no sshd here: install openssh-server to run the remote engine over a "
                    "real ssh connection (the --engine-command tests cover the protocol)")
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(folder / key)], check=True)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    port = _free_port()
    server_config = folder / "sshd_config"
    server_config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {folder / 'host_key'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}", f"PidFile {folder / 'sshd.pid'}",
        "StrictModes no", "UsePAM no", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", ""]))
    if getpass.getuser() == "root" and Path("/run").is_dir():
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
    proc = subprocess.Popen([binary, "-D", "-e", "-f", str(server_config)],
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                why = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                pytest.skip(f"sshd would not start here ({why.strip()[-200:]})")
            time.sleep(0.1)
    client_config = folder / "ssh_config"
    client_config.write_text("\n".join([
        "Host promptbank-test", "  HostName 127.0.0.1", f"  Port {port}",
        f"  User {getpass.getuser()}", f"  IdentityFile {folder / 'client_key'}",
        "  IdentitiesOnly yes", "  StrictHostKeyChecking no",
        "  UserKnownHostsFile /dev/null", "  LogLevel ERROR", ""]))
    return Sshd("promptbank-test", client_config), proc


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real sshd for this test module (skipped, saying why, where none can run)."""
    server, proc = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def ssh_address(sshd, tmp_path, monkeypatch):
    """The ``ssh://`` address of a host reached through that sshd (this machine), with
    Promptbank at a path and its copies of libraries in ``tmp_path / "host"``."""
    from tests.engine.remote.helpers import host_program, stop_host_workers

    monkeypatch.setenv("PROMPTBANK_SSH", sshd.ssh)
    yield f"ssh://{sshd.alias}{host_program(tmp_path, tmp_path / 'host')}"
    stop_host_workers(tmp_path / "host")
