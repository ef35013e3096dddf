"""The README shows only what works: every `syncs.yaml` example in it validates against the
project schema (unknown keys are errors), and every `activation COMMAND --option` it shows is
a command of the CLI taking that option."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main
from ruamel.yaml import YAML

from activation.cli import app
from activation.project.spec import Project

README = (Path(__file__).parent.parent / "README.md").read_text()
YAML_BLOCKS = re.findall(r"^```yaml\n(.*?)^```", README, re.S | re.M)


def test_the_readme_has_the_examples_this_checks() -> None:
    assert len(YAML_BLOCKS) >= 5 and "## `syncs.yaml` reference" in README


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=[f"yaml-{i}" for i in range(len(YAML_BLOCKS))])
def test_every_yaml_example_is_a_valid_project_or_part_of_one(block: str) -> None:
    data = YAML(typ="safe").load(block)
    assert isinstance(data, dict)
    Project.model_validate({"version": 1, **data})  # fragments are valid inside a project


def shown_commands() -> list[tuple[str, list[str]]]:
    """(command, its --options) for each `activation …` the README shows, in code spans or
    in shell blocks (up to a comment)."""
    shown = []
    spans = re.findall(r"`(activation [^`]+)`", README)
    lines = [line.split("#")[0] for block in re.findall(r"^```sh\n(.*?)^```", README, re.S | re.M)
             for line in block.splitlines() if line.startswith("activation ")]
    for text in spans + lines:
        words = text.split()
        if len(words) > 1 and re.fullmatch(r"[a-z]+", words[1]):
            shown.append((words[1], re.findall(r"--[a-z][a-z-]*", text)))
    return shown


def test_every_command_and_option_the_readme_shows_exists() -> None:
    cli = typer.main.get_command(app)
    assert hasattr(cli, "commands")
    shown = shown_commands()
    assert len(shown) >= 20
    for command, options in shown:
        assert command in cli.commands, f"the README shows `activation {command}`, which is no command"
        known = {o for p in cli.commands[command].params for o in p.opts + p.secondary_opts}
        unknown = [o for o in options if o not in known]
        assert not unknown, f"the README shows `activation {command}` with {unknown}, which it does not take"
