"""`tulu-repro lab`: the JupyterLab a person steps through the notebooks in."""

import json
import socket
import subprocess
import time
import urllib.request

import pytest

from tulu_lib.cli import lab_command

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lab_opens_workbook_notebooks_as_notebooks_and_asks_no_news_question():
    """The settings the server hands the page: a double-click on a .py opens it with jupytext's
    notebook viewer (not the text editor), and JupyterLab neither fetches news nor asks to."""
    port = _free_port()
    cmd, env = lab_command(["--no-browser", "--allow-root", f"--port={port}", "--IdentityProvider.token=t",
                            "--ServerApp.ip=127.0.0.1"])
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def setting(plugin: str) -> dict:
        url = f"http://127.0.0.1:{port}/lab/api/settings/{plugin}?token=t"
        with urllib.request.urlopen(url, timeout=10) as r:
            return {k: v.get("default") for k, v in json.load(r)["schema"]["properties"].items()}

    try:
        for _ in range(240):
            try:
                viewers = setting("@jupyterlab/docmanager-extension:plugin")["defaultViewers"]
                break
            except OSError:
                assert server.poll() is None, "jupyter lab exited"
                time.sleep(0.5)
        else:
            pytest.fail("jupyter lab did not answer in 2 minutes")
        assert viewers["python"] == "Jupytext Notebook"
        news = setting("@jupyterlab/apputils-extension:notification")
        assert news["fetchNews"] == "false" and news["checkForUpdates"] is False
    finally:
        server.terminate()
        server.wait(timeout=30)
