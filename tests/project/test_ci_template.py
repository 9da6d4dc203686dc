"""The CI template for forks is a valid GitHub Actions workflow, and it runs what the README says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "notebooks.yml"


def test_workflow_matches_the_github_actions_schema() -> None:
    # check-jsonschema ships SchemaStore's GitHub workflow schema: no network needed
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(WORKFLOW),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_covers_linux_and_macos_on_311_to_313_with_components_required() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    job = workflow["jobs"]["test"]
    assert set(job["strategy"]["matrix"]["os"]) == {"ubuntu-latest", "macos-latest"}
    assert set(job["strategy"]["matrix"]["python"]) == {"3.11", "3.12", "3.13"}
    assert job["env"]["WSLAB_REQUIRE"] == "redis,nginx,browser"
    commands = " ".join(step.get("run", "") for step in job["steps"])
    assert "make test" in commands and "npm ci" in commands
    assert "playwright install" not in commands  # the course never downloads a browser


def test_drift_is_looked_for_weekly_and_updates_are_proposed() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert triggers["schedule"] and "workflow_dispatch" in triggers
    latest = workflow["jobs"]["latest"]
    assert "schedule" in latest["if"] and latest["env"]["WSLAB_REQUIRE"] == "redis,nginx,browser"
    assert "make test-latest" in " ".join(step.get("run", "") for step in latest["steps"])
    dependabot = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    ecosystems = {update["package-ecosystem"] for update in dependabot["updates"]}
    assert ecosystems == {"pip", "npm", "github-actions"}
