"""The built-in guide (Help → Guide, F1) and the About box: what a soft prompt is, the
methods, replay and anchor, how to read the metrics; versions, model and library."""

from __future__ import annotations

import platform

import PySide6
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

from desktop.session import Session

GUIDE = """
<h2>First steps</h2>
<ol>
<li><b>New task</b> (Ctrl+N): name it, say whether it <i>classifies</i> (one of a few labels)
or <i>generates</i> text, and choose a file of examples (CSV, TSV or JSONL with an input and
an output). The wizard proposes an instruction from the labels; edit it freely.</li>
<li><b>Train</b>: the Quick preset checks that the data teaches the task; Standard makes a
solid first version. The Training tab shows the curves; the run can be cancelled and
resumed at its last checkpoint.</li>
<li><b>Try it</b> in the Playground, and run it over a whole file in Batch.</li>
</ol>

<h2>What a soft prompt is</h2>
<p>A soft prompt is a few dozen trained vectors placed before every input. The model itself
never changes: one copy in memory serves every task, and switching tasks only switches the
vectors. A version is trained from examples and kept beside the earlier ones.</p>

<h2>prompt or prefix</h2>
<p><b>prefix</b> (the default) trains keys and values for every layer of the model: it learns
faster and is stronger on small models. <b>prompt</b> trains only input vectors: its files are
the smallest, and the Inspect page can show the words nearest to each vector.</p>

<h2>Continuing on new data: replay and anchor</h2>
<p><b>Replay</b> mixes rows of the earlier data into the new training (0.2–0.3 keeps most of
what the prompt knew). <b>Anchor</b> pulls the prompt towards its parent (0.1–1 when the
earlier data is lost). The Training tab shows the metric on the old and the new data, before
and after.</p>

<h2>Reading the numbers</h2>
<p>A version is judged by its <b>held-out</b> metric: rows it never trained on. Classify tasks
show accuracy, written with its row count and a 95&nbsp;% interval, for example
<i>accuracy 87.3&nbsp;% (95&nbsp;% CI 83.1–90.6&nbsp;%, 300 rows)</i>: on 6 rows even 100&nbsp;%
means little, and the interval says so. The <b>loss</b> (nats per token, lower is better) is
what training lowers; a loss on the task's own training rows is said to be one. When two
versions are compared, the difference is called more than the noise only when the rows
support it.</p>
"""


class GuideDialog(QDialog):
    """The built-in guide, readable without the internet."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Promptbank guide")
        self.resize(640, 560)
        self.text = QTextBrowser()
        self.text.setHtml(GUIDE)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text, 1)
        layout.addWidget(buttons)


def about_text(session: Session) -> str:
    """Versions, the loaded model and the library folder, for the About box."""
    hello = session.engine.hello
    model = session.model
    lines = [f"Promptbank {hello.engine if hello else '(engine not started)'}",
             f"Python {platform.python_version()}, PySide6 {PySide6.__version__}",
             f"Model: {model.name} ({model.parameters / 1e6:.0f}M parameters, {model.device}, "
             f"{model.dtype})" if model else "Model: not loaded yet",
             f"Library: {session.library.root}"]
    return "\n".join(lines)
