"""Settings → Engine → Where: a bad address refused, a real ssh host tested, the engine moved
there (through the relay) and back, the host remembered."""

from __future__ import annotations

from desktop.settings.remote_panel import ADDRESS_KEY, HOSTS_KEY, LOCAL, RemotePanel
from tests.desktop.conftest import ENGINE_START_MS
from tests.desktop.settings.test_gpu_engine_panel import session_on, wait_ready


def test_a_bad_address_is_refused_and_nothing_restarts(qtbot, tiny_model_dir, tmp_path,
                                                       settings):
    session = session_on(tiny_model_dir, tmp_path / "library")
    panel = RemotePanel(session, settings)
    qtbot.addWidget(panel)
    assert panel.address.currentText() == LOCAL
    assert "this computer" in panel.state.text()
    panel.address.setCurrentText("http://gpu-box")
    panel.apply()
    assert "not an engine address" in panel.state.text()
    assert session.engine_address == "" and "--engine" not in session.worker_args()
    assert not session.engine.running


def test_the_engine_moves_to_a_host_and_back(qtbot, tiny_model_dir, tmp_path, settings,
                                            ssh_address):
    session = session_on(tiny_model_dir, tmp_path / "library")
    panel = RemotePanel(session, settings)
    qtbot.addWidget(panel)
    panel.address.setCurrentText(ssh_address)
    with qtbot.waitSignal(panel.sig_checked, timeout=ENGINE_START_MS) as checked:
        panel.check()
    assert checked.args[0] is True, checked.args[1]
    assert "answers" in panel.state.text() and "none yet" in panel.state.text()
    panel.apply()
    wait_ready(qtbot, session.engine)
    assert session.worker_args()[-2:] == ["--engine", ssh_address]
    assert "promptbank-test" in panel.state.text()
    assert settings.value(ADDRESS_KEY) == ssh_address
    assert ssh_address in settings.value(HOSTS_KEY)
    done = []
    session.engine.request("ping", handler=done.append)
    qtbot.waitUntil(lambda: bool(done), timeout=ENGINE_START_MS)
    assert done[0].data == {"pong": True}
    panel.address.setCurrentText(LOCAL)
    panel.apply()
    wait_ready(qtbot, session.engine)
    assert "--engine" not in session.worker_args()
    assert settings.value(ADDRESS_KEY) == ""
    session.engine.stop()
