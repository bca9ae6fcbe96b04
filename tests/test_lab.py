"""`tulu-repro lab`: the JupyterLab a person steps through the notebooks in."""

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tulu_lib.cli import lab_command

pytestmark = pytest.mark.slow
TOKEN = "t"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab_server(tmp_path):
    """The server `tulu-repro lab` starts (its command and environment, no browser, a free port,
    token ``TOKEN``) on a copy of the notebooks in ``tmp_path/notebooks``, so that a page that saves
    or autosaves changes the copy; JupyterLab's workspace goes to ``tmp_path``, not ~/.jupyter.
    Yields the server's base URL."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for notebook in (Path(__file__).resolve().parents[1] / "notebooks").glob("*.py"):
        shutil.copy(notebook, notebooks)
    port = _free_port()
    cmd, env = lab_command(["--no-browser", "--allow-root", f"--port={port}", "--ServerApp.ip=127.0.0.1",
                            f"--IdentityProvider.token={TOKEN}", f"--LabApp.workspaces_dir={tmp_path}"])
    cmd[cmd.index("--notebook-dir") + 1] = str(notebooks)
    url = f"http://127.0.0.1:{port}"
    log_file = tmp_path / "lab.log"
    with open(log_file, "wb") as log:
        server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=10):
                    break
            except OSError:
                assert server.poll() is None, f"jupyter lab exited: {log_file.read_text()[-2000:]}"
                time.sleep(0.5)
        else:
            pytest.fail("jupyter lab did not answer in 2 minutes")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_lab_opens_workbook_notebooks_as_notebooks_and_asks_no_news_question(lab_server):
    """The settings the server hands the page: a double-click on a .py opens it with jupytext's
    notebook viewer (not the text editor), and JupyterLab neither fetches news nor asks to."""
    def setting(plugin: str) -> dict:
        with urllib.request.urlopen(f"{lab_server}/lab/api/settings/{plugin}?token={TOKEN}", timeout=10) as r:
            return {k: v.get("default") for k, v in json.load(r)["schema"]["properties"].items()}

    viewers = setting("@jupyterlab/docmanager-extension:plugin")["defaultViewers"]
    assert viewers["python"] == "Jupytext Notebook"
    news = setting("@jupyterlab/apputils-extension:notification")
    assert news["fetchNews"] == "false" and news["checkForUpdates"] is False
