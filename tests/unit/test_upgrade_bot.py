"""examples/upgrade-bot.yml: what a linter cannot know, the wheelfarm commands it runs
exist with the options it gives them, and it asks for the permissions it needs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import yaml

from wheelfarm.cli import cli

WORKFLOW = Path(__file__).parents[2] / "examples" / "upgrade-bot.yml"


def test_permissions_and_schedule() -> None:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert data["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert "schedule" in data[True]  # YAML 1.1 reads the key `on` as true


def test_every_wheelfarm_command_and_option_exists() -> None:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["bump"]["steps"]
    script = "\n".join(s["run"] for s in steps if "run" in s).replace("\\\n", " ")
    commands = "\n".join(line for line in script.splitlines()
                         if not line.strip().startswith("echo"))  # prose, not commands
    calls = re.findall(r"wheelfarm (\w+)([^;|&\n]*)", commands)
    assert {name for name, _ in calls} >= {"outdated", "bump", "build"}
    ctx = click.Context(cli)
    for name, rest in calls:
        command = cli.get_command(ctx, name)
        assert command is not None, name
        known = {o for p in command.params for o in getattr(p, "opts", [])}
        for word in shlex.split(rest):
            if word.startswith("--"):
                assert word in known, f"wheelfarm {name} has no {word}"
