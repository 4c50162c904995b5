"""`petal demo` with nothing configured: a real embedded PostgreSQL under PETAL_HOME."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_starts_an_embedded_server_under_petal_home(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "PETAL_DATABASE_URL"}
    env["PETAL_HOME"] = str(tmp_path / "home")
    pgdata = tmp_path / "home" / "pgdata"
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "petal_labeller.cli",
                "demo",
                "--papers",
                "12",
                "--labelled",
                "4",
                "--no-label",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        assert f"embedded PostgreSQL in {pgdata}" in result.stdout
        assert "store now: 12 papers, 4 labelled by curators" in result.stdout
        assert (pgdata / "PG_VERSION").is_file()
        # The server keeps running for later commands: stats reads the same store.
        stats = subprocess.run(
            [sys.executable, "-m", "petal_labeller.cli", "stats"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert "papers:                  12" in stats.stdout, stats.stderr
    finally:
        if pgdata.exists():
            import pgserver

            pgserver.get_server(pgdata, cleanup_mode="stop").cleanup()
