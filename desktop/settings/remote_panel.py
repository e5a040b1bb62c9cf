"""RemotePanel: Settings → Engine → Where: this computer or a GPU host over ssh, with a
connection test and the hosts used before."""

from __future__ import annotations

import json

from PySide6.QtCore import QProcess, QProcessEnvironment, QSettings, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from desktop.session import Session
from desktop.widgets.tone import set_tone
from engine.api.engine_target import EngineTarget
from engine.api.launch import child_env, module_command
from engine.errors import PromptbankError

LOCAL = "This computer"
HOSTS_KEY = "engine/remote_hosts"
ADDRESS_KEY = "engine/address"
REMEMBERED = 8


class RemotePanel(QWidget):
    """Chooses where the engine runs; the library stays on this computer either way."""

    sig_checked = Signal(bool, str)
    """A connection test ended: (whether the host answered, what it said or why not)."""

    def __init__(self, session: Session, settings: QSettings,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.settings = settings
        self.address = QComboBox(editable=True)
        self.address.setToolTip("ssh://[user@]host[:port][/path/to/promptbank]. ssh uses your "
                                "keys and ~/.ssh/config; no password is asked or stored.")
        self.address.addItems([LOCAL, *self.remembered()])
        self.address.setCurrentText(session.engine_address or LOCAL)
        self.test = QPushButton("Test connection")
        self.test.setToolTip("Reach the host and ask its Promptbank what it holds; starts "
                             "nothing there.")
        self.test.clicked.connect(self.check)
        self.use = QPushButton("Use")
        self.use.setToolTip("Restart the engine there (or here). Runs on the host go on when "
                            "the connection drops; connecting again shows them.")
        self.use.clicked.connect(self.apply)
        self.state = QLabel()
        self.state.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(QLabel("Where"))
        row.addWidget(self.address, 1)
        row.addWidget(self.test)
        row.addWidget(self.use)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.state)
        self._probe = QProcess(self)
        self._probe.finished.connect(self._checked)
        self._show(self._where_now())

    def remembered(self) -> list[str]:
        """The hosts used before, newest first."""
        value = self.settings.value(HOSTS_KEY, []) or []
        return [str(v) for v in ([value] if isinstance(value, str) else value)][:REMEMBERED]

    def chosen(self) -> str:
        """The address typed or picked ("" for this computer); PromptbankError if unusable."""
        text = self.address.currentText().strip()
        if text in ("", LOCAL):
            return ""
        EngineTarget.parse(text)
        return text

    def _chosen_or_say(self) -> str | None:
        """:meth:`chosen`, or None after saying why the address is unusable."""
        try:
            return self.chosen()
        except PromptbankError as exc:
            self._show(str(exc), error=True)
            return None

    def check(self) -> None:
        """Test the connection in the background (``promptbank remote check``)."""
        address = self._chosen_or_say()
        if address is None:
            return
        if not address:
            self._show("The engine runs on this computer; there is nothing to reach.")
            return
        env = QProcessEnvironment()
        for key, value in child_env().items():
            env.insert(key, value)
        self._probe.setProcessEnvironment(env)
        program, *args = module_command("engine.cli")
        self.test.setEnabled(False)
        self._show(f"Reaching {address}…")
        self._probe.start(program, [*args, "--library", str(self.session.library.root),
                                    "--engine", address, "--json", "remote", "check"])

    def _checked(self, code: int, _status: QProcess.ExitStatus) -> None:
        self.test.setEnabled(True)
        out = bytes(self._probe.readAllStandardOutput()).decode("utf-8", "replace")
        err = bytes(self._probe.readAllStandardError()).decode("utf-8", "replace")
        try:
            found = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        except ValueError:
            found = {}
        if code == 0 and "engine" in found:
            text = (f"{found['host']} answers: Promptbank {found['engine']}; its copy of this "
                    f"library: {found['copy_state']}; its worker: {found['worker']}.")
            self._show(text)
            self.sig_checked.emit(True, text)
            return
        why = found.get("error") or next(
            (ln.removeprefix("promptbank: ") for ln in reversed(err.splitlines()) if ln.strip()),
            f"the test ended with exit code {code}")
        self._show(why, error=True)
        self.sig_checked.emit(False, why)

    def apply(self) -> None:
        """Run the engine at the chosen place (restarting it) and remember the host."""
        address = self._chosen_or_say()
        if address is None:
            return
        if address:
            hosts = [address, *(h for h in self.remembered() if h != address)][:REMEMBERED]
            self.settings.setValue(HOSTS_KEY, hosts)
        self.settings.setValue(ADDRESS_KEY, address)
        self.session.use_remote(address)
        self._show(self._where_now())

    def _where_now(self) -> str:
        address = self.session.engine_address
        if not address:
            return "The engine runs on this computer."
        return (f"The engine runs on {EngineTarget.parse(address).host}; the library stays "
                "here and is brought up to date after every result.")

    def _show(self, text: str, error: bool = False) -> None:
        self.state.setText(text)
        set_tone(self.state, "error" if error else None)
