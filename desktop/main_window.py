"""The main window: for now the model status in the status bar, loaded via the engine."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QMainWindow

from desktop.engine.process import EngineProcess
from engine.protocol import Event


class MainWindow(QMainWindow):
    """Promptbank's main window."""

    def __init__(self, engine: EngineProcess) -> None:
        super().__init__()
        self.engine = engine
        self.setWindowTitle("Promptbank")
        self.resize(1100, 720)
        self.model_label = QLabel("No model")
        self.state_label = QLabel("Engine: stopped")
        self.statusBar().addWidget(self.model_label, 1)
        self.statusBar().addPermanentWidget(self.state_label)
        engine.sig_state.connect(self._on_state)

    def _on_state(self, state: str, detail: str) -> None:
        self.state_label.setText(f"Engine: {state}" + (f" — {detail}" if detail else ""))
        if state == "ready":
            self.model_label.setText("Loading model…")
            self.engine.request("model_info", handler=self._on_model_event)

    def _on_model_event(self, event: Event) -> None:
        if event.type == "progress":
            pct = int(100 * event.data.get("fraction", 0))
            self.model_label.setText(f"{event.data.get('stage', 'Loading')} ({pct}%)")
        elif event.type == "result":
            d = event.data
            self.model_label.setText(f"{d['name']} · {d['device']} · {d['dtype']} · "
                                     f"{d['parameters'] / 1e6:.0f}M parameters")
        elif event.type == "error":
            self.model_label.setText(f"Model failed to load: {event.data.get('message')}")
