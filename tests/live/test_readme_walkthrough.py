"""The README's walk-through, run as printed: `make serve` on a temporary SQLite database, then the
second shell block with bash (curl, python3, `. .venv/bin/activate`, `provisor token list`).

Only the two values a reader types in are substituted: the token `make serve` printed (`export T=...`)
and the port (the test's free port instead of 8000). `provisor` is taken off PATH first, so the block
itself must put it there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.live.make_serve import REPO, make_serve
from tests.live.server import free_port

SECTION = "## A walk-through with curl"


def walkthrough_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.DOTALL)


def test_the_walkthrough_has_a_serve_block_and_a_client_block() -> None:
    serve, client = walkthrough_blocks()
    assert serve.split("#")[0].strip() == "make serve"
    assert re.search(r"^export T=prv_\.\.\.", client, re.MULTILINE)
    assert "export B=http://127.0.0.1:8000/scim/v2" in client


def test_readme_walkthrough_runs_as_printed(tmp_path: Path) -> None:
    _, client = walkthrough_blocks()
    database_url = f"sqlite:///{tmp_path / 'provisor.db'}"
    port = free_port()
    with make_serve(database_url, port, tmp_path / "serve.log") as served:
        script = re.sub(r"^export T=prv_\.\.\..*$", f"export T={served.token}", client, flags=re.MULTILINE)
        script = script.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        assert script.count(served.token) == 1 and f":{port}/" in script
        venv_bin = str(Path(sys.executable).parent)
        path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISOR_", "VIRTUAL_ENV"))}
        env.update(PATH=path, PROVISOR_DATABASE_URL=database_url)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    created, status = json.loads(lines[0]), lines[1]
    assert status == "201" and created["userName"] == "ada@example.com", lines[:2]
    uid = created["id"]

    got = json.loads(lines[2])  # found by the case-insensitive filter, then projected
    assert (got["id"], got["userName"], got["name"]) == (uid, "ada@example.com", {"givenName": "Ada"})
    assert "emails" not in got
    listed = json.loads(lines[3])
    assert listed["totalResults"] == 1 and listed["Resources"][0]["id"] == uid
    replaced = json.loads(lines[4])
    assert replaced["displayName"] == "Ada L." and "name" not in replaced
    deactivated = json.loads(lines[5])
    assert deactivated["active"] is False
    assert lines[6:8] == ["204", "404"]

    tokens = [line for line in lines[8:] if "make serve" in line]
    assert len(tokens) == 1 and tokens[0].rstrip().endswith("active"), lines[8:]
