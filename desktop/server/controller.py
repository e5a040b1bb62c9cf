"""LocalServer: starts and stops the engine's OpenAI-compatible server and knows its state.

The server is a thread of the engine process, so it ends with it (a model change, a restart,
a crash); with "start with the engine" on, it is started again once the new engine is ready.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject, QSettings, Signal

from desktop.session import Session
from engine.api.generation import HttpServerState

LOOPBACK, EVERYWHERE = "127.0.0.1", "0.0.0.0"


@dataclass
class ServerSettings:
    """How the server listens: port, whether other computers may connect (then a key is
    required), the key, and whether it starts whenever the engine does."""

    port: int = 8000
    others: bool = False
    api_key: str = ""
    autostart: bool = False

    @classmethod
    def load(cls, settings: QSettings) -> ServerSettings:
        """The saved settings (the defaults for what was never saved)."""
        return cls(int(settings.value("server/port", 8000)),
                   settings.value("server/others", False, type=bool),
                   str(settings.value("server/api_key", "")),
                   settings.value("server/autostart", False, type=bool))

    def save(self, settings: QSettings) -> None:
        """Remember them (the key only when the server starts by itself, which needs it)."""
        settings.setValue("server/port", self.port)
        settings.setValue("server/others", self.others)
        settings.setValue("server/autostart", self.autostart)
        if self.autostart and self.api_key:
            settings.setValue("server/api_key", self.api_key)
        else:
            settings.remove("server/api_key")

    def op_args(self) -> dict:
        """The ``serve_http`` op's arguments."""
        args: dict = {"host": EVERYWHERE if self.others else LOOPBACK, "port": self.port}
        if self.api_key:
            args["api_key"] = self.api_key
        return args


class LocalServer(QObject):
    """The one place the desktop starts, stops and follows the server."""

    sig_state = Signal(object)
    """The server started or stopped (an ``HttpServerState``)."""
    sig_failed = Signal(str)
    """Starting or stopping failed; the message says why and what to do."""

    def __init__(self, session: Session, settings: QSettings,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.settings = settings
        self.state = HttpServerState()
        session.sig_model_changed.connect(self._on_model)

    def start(self, config: ServerSettings) -> None:
        """Start (or restart) the server with ``config``, and remember it."""
        config.save(self.settings)
        (self.session.op("serve_http", config.op_args())
         .on_success(self._set_state).on_failure(self.sig_failed.emit).run())

    def stop(self) -> None:
        """Stop the server (it stays off at the next engine start too)."""
        self.settings.setValue("server/autostart", False)
        (self.session.op("serve_http", {"stop": True})
         .on_success(self._set_state).on_failure(self.sig_failed.emit).run())

    def _set_state(self, state: HttpServerState) -> None:
        self.state = state
        self.sig_state.emit(state)

    def _on_model(self, model) -> None:
        # No model: the engine stopped or is restarting, and the server with it.
        if model is None:
            if self.state.running:
                self._set_state(HttpServerState())
            return
        config = ServerSettings.load(self.settings)
        if config.autostart and not self.state.running:
            self.start(config)
