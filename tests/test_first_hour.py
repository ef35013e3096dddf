"""What a new user hit in their first hour (issue 16), each kept fixed."""

from __future__ import annotations

from pathlib import Path

from conftest import Project


def test_validate_names_the_trait_whose_sql_returns_duplicate_keys(project: Project) -> None:
    text = (project.root / "syncs.yaml").read_text()
    # a join that repeats users: each order row of a user, not one row per user
    text = text.replace('sql: "select user_id, sum(amount) as ltv from src.orders group by 1"',
                        'sql: "select user_id, amount as ltv from src.orders"')
    (project.root / "syncs.yaml").write_text(text)
    errors = project.json("validate", expect=2)["errors"]
    assert len(errors) == 1, errors  # the trait, not every model that reads it
    (error,) = errors
    assert "trait ltv" in error and "syncs.yaml:" in error
    assert "duplicate keys (user_id): 200 keys appear more than once, e.g. u0000 (4 rows)" in error
    # fixed, it validates; duplicates in the entity's own table name the entity
    (project.root / "syncs.yaml").write_text(
        (project.root / "syncs.yaml").read_text().replace('sql: "select user_id, amount as ltv from src.orders"',
                                                          'sql: "select user_id, sum(amount) as ltv from src.orders group by 1"'))
    project.cli("validate")
    project.sql("INSERT INTO src.users SELECT * FROM src.users WHERE user_id IN ('u0007', 'u0008')")
    (error,) = project.json("validate", expect=2)["errors"]
    assert "entity user" in error and "2 keys appear more than once, e.g. u0007 (2 rows), u0008 (2 rows)" in error


def test_validate_needs_destination_secrets_only_with_remote(project: Project) -> None:
    """A CI job with warehouse credentials only keeps the column checks: secrets are needed
    where a destination is contacted (--remote, run), not by validate."""
    text = (project.root / "syncs.yaml").read_text()
    text = text.replace('url: "${HOOK_URL}"', 'url: "${HOOK_URL_UNSET_IN_CI}"')
    text = text.replace("destinations:\n", 'destinations:\n  hs: {type: hubspot, token: "${HUBSPOT_TOKEN_UNSET_IN_CI}"}\n', 1)
    text += "  users_to_hs:\n    from: user\n    to: hs\n    object: contacts\n    match: {email: email}\n    fields: {ltv: nope}\n"
    (project.root / "syncs.yaml").write_text(text)
    errors = project.json("validate", expect=2)["errors"]
    assert len(errors) == 1 and "fields.ltv uses column 'nope', which the model lacks" in errors[0], errors
    (project.root / "syncs.yaml").write_text(text.replace("fields: {ltv: nope}", "fields: {ltv: ltv}"))
    project.cli("validate")
    remote = project.json("validate", "--remote", expect=2)["errors"]
    assert any("HUBSPOT_TOKEN_UNSET_IN_CI is not set" in e for e in remote) and any("HOOK_URL_UNSET_IN_CI is not set" in e for e in remote)
    assert any("HOOK_URL_UNSET_IN_CI is not set" in e for e in project.json("run", expect=2)["errors"])
