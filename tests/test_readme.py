"""The README and the docs (the README is the quickstart, docs/ the reference) show only what
works and document every key: each `syncs.yaml` example in them validates against the
project schema (unknown keys are errors), each `activation COMMAND --option` shown is a
command of the CLI taking that option, every key of every model of `syncs.yaml` is named,
each destination's key table names only that destination's keys, each `make TARGET` shown is
a target of the Makefile, every relative link resolves, the site's navigation lists every
page, and the generated key tables (docs/schema.md) are current."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import typer.main
from ruamel.yaml import YAML

from activation.cli import app
from activation.destinations import REGISTRY
from activation.project import spec
from activation.project.spec import Project
from activation.project.strict import Strict
from activation.warehouse import spec as warehouse_spec

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
README = "\n".join(page.read_text() for page in PAGES)  # the README and every docs page
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
    lines = [
        line.split("#")[0]
        for block in re.findall(r"^```sh\n(.*?)^```", README, re.S | re.M)
        for line in block.splitlines()
        if line.startswith("activation ")
    ]
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


DESTINATION_SPECS = [p.spec for p in REGISTRY.values()]


def test_every_make_target_the_readme_shows_exists() -> None:
    makefile = (Path(__file__).parent.parent / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, re.M))
    shown = set(re.findall(r"(?:`|^)make ([a-z][a-z0-9-]*)", README, re.M))  # code spans, shell lines
    assert {"demo", "test", "lint", "test-fast"} <= shown
    assert not shown - targets, f"the README shows `make {sorted(shown - targets)}`, which the Makefile lacks"


def spec_models() -> list[type[Strict]]:
    modules = [spec, warehouse_spec, *(sys.modules[m.__module__] for m in DESTINATION_SPECS)]  # each destination's spec module
    found = [c for mod in modules for c in vars(mod).values() if isinstance(c, type) and issubclass(c, Strict) and c is not Strict]
    return list(dict.fromkeys(found))  # a module may import another's models


def test_every_key_of_syncs_yaml_is_documented() -> None:
    names = set(re.findall(r"`([\w.]+)", README)) | set(re.findall(r"(?:^\s*|[{,]\s*)(\w+):", README, re.M))
    names |= {n.rsplit(".", 1)[-1] for n in names}
    undocumented = [
        f"{model.__name__}.{f.alias or name}"
        for model in spec_models()
        for name, f in model.model_fields.items()
        if (f.alias or name) not in names
    ]
    assert not undocumented, f"keys of syncs.yaml the README never names: {undocumented}"


def test_each_destinations_key_table_names_its_own_keys() -> None:
    by_type = {
        m.model_fields["type"].annotation.__args__[0]: m
        for m in spec_models()  # type: ignore[union-attr]
        if "type" in m.model_fields and m in DESTINATION_SPECS
    }
    parts = re.split(r"^(#{3,4} .*)$", README, flags=re.M)
    checked = 0
    for head, body in zip(parts[1::2], parts[2::2], strict=False):
        m = re.fullmatch(r"#{3,4} `(\w+)`", head.strip())
        if not m or m.group(1) not in by_type:
            continue
        fields = set(by_type[m.group(1)].model_fields)
        for table in re.findall(r"^\| key \|.*\n\|[-| ]+\|\n((?:\|.*\n)+)", body, re.M):
            for row in table.splitlines():
                keys = re.findall(r"`(\w+)`", row.split("|")[1])
                assert set(keys) <= fields, f"`{m.group(1)}` in the README documents {set(keys) - fields}, which it has not"
                checked += len(keys)
    assert set(by_type) == {"file", "webhook", "hubspot", "salesforce", "meta_audience", "google_ads", "mailchimp", "iterable", "braze", "klaviyo", "intercom", "customerio", "zendesk"}  # fmt: skip
    assert checked >= 50


def test_the_daemons_flag_table_names_its_own_flags() -> None:
    daemon = typer.main.get_command(app).commands["daemon"]  # type: ignore[attr-defined]
    known = {o for p in daemon.params for o in p.opts + p.secondary_opts}
    table = README.split("## The daemon", 1)[1].split("### Command line", 1)[1].split("\n### ", 1)[0]
    flags = set(re.findall(r"--[a-z][a-z-]*", table))
    assert len(flags) >= 8 and flags <= known, f"not flags of `activation daemon`: {flags - known}"


def test_the_readme_is_a_quickstart_and_the_reference_lives_in_docs() -> None:
    quickstart = (ROOT / "README.md").read_text()
    assert len(quickstart.splitlines()) < 400, "the README stays a quickstart: the reference goes to docs/"
    for heading in ("## Set-up: two commands", "## Install", "## Your own project", "## Commands", "## Documentation"):
        assert heading in quickstart


def test_every_relative_link_resolves() -> None:
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a URL
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_the_sites_navigation_lists_every_page() -> None:
    nav = YAML(typ="safe").load((ROOT / "mkdocs.yml").read_text())["nav"]

    def pages(items: list[object]) -> list[str]:
        out: list[str] = []
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            out += pages(value) if isinstance(value, list) else [str(value)]
        return out

    listed = pages(nav)
    docs = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md"))
    assert sorted(listed) == docs


def test_the_generated_key_tables_are_current() -> None:
    from activation.project.reference import markdown

    assert (ROOT / "docs" / "schema.md").read_text() == markdown(), (
        "docs/schema.md is stale: run `make docs` (or python -m activation.project.reference > docs/schema.md)"
    )
