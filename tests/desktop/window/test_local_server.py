"""The local OpenAI-compatible server from the desktop: started and stopped in its dialog,
answered by the real openai client, and started again with the engine when asked to."""

from __future__ import annotations

import socket

import openai

from tests.desktop.conftest import ENGINE_START_MS
from tests.desktop.helpers import add_random_version, add_task_with_data


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_server_starts_answers_and_comes_back_with_the_engine(qtbot, window,
                                                                  sentiment_file, tiny_host):
    add_task_with_data(window, "served", sentiment_file, kind="generate")
    add_random_version(window, tiny_host, "served", 51)
    dialog = window.open_server()
    dialog.others.setChecked(True)  # other computers, but no key: refused before the engine
    dialog.key.clear()
    dialog.toggle.click()
    assert "only connect with a key" in dialog.status.text()
    assert not window.server.state.running
    dialog.others.setChecked(False)
    dialog.port.setValue(_free_port())
    dialog.autostart.setChecked(True)
    with qtbot.waitSignal(window.server.sig_state, timeout=30_000) as started:
        dialog.toggle.click()
    state = started.args[0]
    assert state.running and state.url.endswith(f":{dialog.port.value()}/v1")
    assert "served" in state.models and f"Serving at {state.url}" in dialog.status.text()
    assert window.server_label.isVisible() and dialog.toggle.text() == "Stop the server"
    assert window.server_label.text() == f"Serving :{dialog.port.value()}"
    assert f'base_url="{state.url}"' in dialog.snippet.toPlainText()
    client = openai.OpenAI(base_url=state.url, api_key="none", max_retries=0)
    assert "served" in {m.id for m in client.models.list()}
    answer = client.chat.completions.create(
        model="served", messages=[{"role": "user", "content": "hello"}], max_tokens=3)
    assert answer.choices[0].message.content  # the engine answered through the server

    # A restart ends the server with its process; "start with the engine" brings it back.
    with qtbot.waitSignal(window.server.sig_state, timeout=ENGINE_START_MS,
                          check_params_cb=lambda s: s.running):
        window.restart_engine()
    assert window.server.state.url == state.url
    assert client.models.list().data  # listening again on the same port

    with qtbot.waitSignal(window.server.sig_state, timeout=30_000,
                          check_params_cb=lambda s: not s.running):
        dialog.toggle.click()
    assert not window.server_label.isVisible() and dialog.status.text() == "Not running."
    assert window.settings.value("server/autostart", type=bool) is False
    dialog.close()
