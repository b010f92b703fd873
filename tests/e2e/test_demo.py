"""``omnihook demo`` end to end: real servers on loopback, run exactly as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# The demo's own deadline is 60 s (+15 s for startup and shutdown); past this, it hangs.
TIMEOUT_SECONDS = 120


@pytest.mark.e2e
def test_demo_runs_the_whole_pipeline_and_exits_0(tmp_path: Path) -> None:
    # A clean environment and working directory: no OMNIHOOK_* variable nor .env may steer it.
    env = {name: value for name, value in os.environ.items() if not name.startswith("OMNIHOOK_")}
    env["COLUMNS"] = "200"  # the summary table must not fold its cells
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    report = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, report
    assert "Traceback" not in result.stderr, report
    lines = result.stdout.splitlines()
    assert any(line.startswith("demo passed: 5 tasks ended as expected") for line in lines), report
    assert "demo failed" not in result.stdout, report

    summary = lines[next(i for i, line in enumerate(lines) if "summary" in line) :]
    for name, expected in [
        ("text", "succeeded"),
        ("image", "succeeded"),
        ("multi", "succeeded"),
        ("fails", "failed"),
        ("robust", "succeeded"),
    ]:
        row = next((line for line in summary if line.strip().startswith(name + " ")), None)
        assert row is not None, f"no summary row for {name}\n{report}"
        assert row.split()[1:3] == [expected, expected], row
        assert row.rstrip().endswith("ok"), row
    # the flaky demo handler failed once on each task.completed and was retried
    assert "retried" in "\n".join(summary), report
    # the demo leaves nothing behind in the working directory
    assert list(tmp_path.iterdir()) == []
