"""ServerDialog: the local OpenAI-compatible server — port, who may connect, the key, start
and stop, and how a program reaches it."""

from __future__ import annotations

import secrets

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.server.controller import LocalServer, ServerSettings
from desktop.widgets.tone import rich, set_tone
from engine.api.generation import HttpServerState

ABOUT = ("Other programs on this computer can use every task through the OpenAI API: the "
         "model name is the task's name (TASK@N for version N), and requests that arrive "
         "together share one batch. The server runs in the engine, beside training.")


def client_snippet(state: HttpServerState, task: str) -> str:
    """Python that calls the running server with the openai package (the key left as a
    placeholder)."""
    key = '"YOUR-KEY"' if state.key_required else '"none"'
    return (f"from openai import OpenAI\n\n"
            f"client = OpenAI(base_url=\"{state.url}\", api_key={key})\n"
            f"answer = client.chat.completions.create(\n"
            f"    model=\"{task}\", messages=[{{\"role\": \"user\", \"content\": \"…\"}}])\n"
            f"print(answer.choices[0].message.content)\n")


class ServerDialog(QDialog):
    """Starts and stops the local server; stays usable while the app works (not modal)."""

    def __init__(self, server: LocalServer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.server = server
        self.setWindowTitle("Local server")
        saved = ServerSettings.load(server.settings)
        self.port = QSpinBox(minimum=1, maximum=65535, value=saved.port)
        self.port.setToolTip("The TCP port it listens on (8000 unless another program uses it).")
        self.others = QCheckBox("Let other computers connect (needs a key)")
        self.others.setChecked(saved.others)
        self.others.setToolTip("Listen on every network address instead of this computer "
                               "only; then every request must bring the key.")
        self.key = QLineEdit(saved.api_key, placeholderText="no key (this computer only)")
        self.key.setEchoMode(QLineEdit.EchoMode.PasswordEchoOnEdit)
        self.key.setToolTip("Clients send it as 'Authorization: Bearer KEY'.")
        new_key = QPushButton("New key")
        new_key.setToolTip("Make a random key (copied to the clipboard).")
        new_key.clicked.connect(self._new_key)
        self.autostart = QCheckBox("Start it whenever the engine starts")
        self.autostart.setChecked(saved.autostart)
        self.autostart.setToolTip("The key, if any, is then kept in this app's settings file.")
        self.toggle = QPushButton()
        self.toggle.clicked.connect(self._toggle)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.url = QLineEdit(readOnly=True)
        copy = QPushButton("Copy")
        copy.setToolTip("Copy the base URL")
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.url.text()))
        self.snippet = QPlainTextEdit(readOnly=True)
        self.snippet.setMinimumHeight(120)
        about = QLabel(ABOUT)
        about.setWordWrap(True)
        set_tone(about, "muted")
        key_row = QHBoxLayout()
        key_row.addWidget(self.key, 1)
        key_row.addWidget(new_key)
        url_row = QHBoxLayout()
        url_row.addWidget(self.url, 1)
        url_row.addWidget(copy)
        form = QFormLayout()
        form.addRow("Port", self.port)
        form.addRow("", self.others)
        form.addRow("API key", key_row)
        form.addRow("", self.autostart)
        form.addRow("Address", url_row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(about)
        layout.addLayout(form)
        layout.addWidget(self.toggle)
        layout.addWidget(self.status)
        layout.addWidget(self.snippet, 1)
        layout.addWidget(buttons)
        server.sig_state.connect(self.show_state)
        server.sig_failed.connect(self._failed)
        server.session.sig_model_changed.connect(lambda _model: self.show_state(server.state))
        self.show_state(server.state)
        self.resize(560, 460)

    def settings(self) -> ServerSettings:
        """What the fields say."""
        return ServerSettings(self.port.value(), self.others.isChecked(),
                              self.key.text().strip(), self.autostart.isChecked())

    def show_state(self, state: HttpServerState) -> None:
        """Show whether it runs, where and what it serves."""
        ready = self.server.session.model is not None
        self.toggle.setEnabled(ready or state.running)
        self.toggle.setText("Stop the server" if state.running else "Start the server")
        for widget in (self.port, self.others, self.key, self.autostart):
            widget.setEnabled(not state.running)
        self.url.setText(state.url)
        if state.running:
            models = ", ".join(state.models[:8]) + (" …" if len(state.models) > 8 else "")
            self.status.setText(f"Serving at {state.url}"
                                + (" (requests need the key)" if state.key_required else "")
                                + f". Models: {models or 'none yet'}.")
            task = next((m for m in state.models if "@" not in m), "TASK")
            self.snippet.setPlainText(client_snippet(state, task))
        else:
            self.status.setText("Not running." if ready else
                                "Not running; it can start once the engine has loaded the "
                                "model.")
            self.snippet.clear()

    def _toggle(self) -> None:
        if self.server.state.running:
            self.server.stop()
            return
        config = self.settings()
        if config.others and not config.api_key:
            self._failed("Other computers may only connect with a key: type one or press "
                         "New key.")
            return
        self.status.setText("Starting…")
        self.toggle.setEnabled(False)
        self.server.start(config)

    def _new_key(self) -> None:
        self.key.setText(secrets.token_urlsafe(24))
        QGuiApplication.clipboard().setText(self.key.text())

    def _failed(self, message: str) -> None:
        self.status.setText(rich("error", message))
        self.toggle.setEnabled(self.server.session.model is not None)
