"""Snowflake connection settings from syncs.yaml + secrets from the environment, as the real
snowflake-sqlalchemy dialect hands them to `snowflake.connector.connect` (answered by
fakesnow), and what fakesnow cannot prove, checked on the SQL we generate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from activation.cli import app

fakesnow = pytest.importorskip("fakesnow", reason="fakesnow is not installed (pip install -e '.[dev]')")
serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

PROJECT = """
version: 1
warehouse:
  type: snowflake
  account: myorg-acct
  user: ACTIVATION_SVC
{auth}
  role: ACTIVATION_ROLE
  warehouse: COMPUTE_WH
  database: analytics_db
entities:
  user: {{table: src.users, key: user_id}}
destinations:
  out: {{type: file, path: out/users.csv}}
syncs:
  users: {{from: user, to: out, match: {{email: email}}, fields: {{Plan: plan}}}}
"""


@pytest.fixture
def snowflake() -> Iterator[Any]:
    import snowflake.connector

    with fakesnow.patch():
        engine = sa.create_engine("snowflake://x:y@myorg-acct/analytics_db/public")
        with engine.begin() as c:
            c.execute(sa.text("CREATE SCHEMA IF NOT EXISTS src"))
            c.execute(sa.text("CREATE TABLE src.users (user_id VARCHAR, email VARCHAR, plan VARCHAR)"))
            c.execute(sa.text("INSERT INTO src.users VALUES ('u1', 'a@example.com', 'pro')"))
        engine.dispose()
        snowflake.connector.connect.reset_mock()
        yield snowflake.connector.connect  # fakesnow's patch: records how the dialect connected


def project(tmp_path: Path, auth: str) -> Path:
    (tmp_path / "syncs.yaml").write_text(PROJECT.format(auth=auth))
    return tmp_path


def cli(root: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, [*args, "--project", str(root)], env=env or {})


def rsa_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def der(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def test_key_pair_auth_from_an_encrypted_key_file(tmp_path: Path, snowflake: Any) -> None:
    key = rsa_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"open sesame")
    )
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "rsa_key.p8").write_bytes(pem)
    root = project(tmp_path, "  private_key_file: keys/rsa_key.p8\n  private_key_passphrase: ${SF_PASSPHRASE}")
    result = cli(root, "plan", "--json", env={"SF_PASSPHRASE": "open sesame"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["plans"][0]["counts"]["added"] == 1
    kwargs = snowflake.call_args.kwargs
    assert kwargs["private_key"] == der(key)
    assert "password" not in kwargs
    assert {k: kwargs[k] for k in ("account", "user", "role", "warehouse", "database", "schema")} == {
        "account": "myorg-acct",
        "user": "ACTIVATION_SVC",
        "role": "ACTIVATION_ROLE",
        "warehouse": "COMPUTE_WH",
        "database": "analytics_db",
        "schema": "activation",
    }
    assert kwargs["session_parameters"] == {"QUERY_TAG": "activation"}


def test_key_pair_auth_from_a_key_in_the_environment(tmp_path: Path, snowflake: Any) -> None:
    key = rsa_key()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    root = project(tmp_path, "  private_key: ${SF_PRIVATE_KEY}")
    # CI secrets often hold the PEM on one line with literal \n
    result = cli(root, "plan", env={"SF_PRIVATE_KEY": pem.decode().replace("\n", "\\n")})
    assert result.exit_code == 0, result.output
    assert snowflake.call_args.kwargs["private_key"] == der(key)


def test_password_auth_passes_the_secret_to_the_connector_only(tmp_path: Path, snowflake: Any) -> None:
    root = project(tmp_path, "  password: ${SF_PASSWORD}")
    result = cli(root, "plan", "--json", env={"SF_PASSWORD": "s3cret-pass"})
    assert result.exit_code == 0, result.output
    assert snowflake.call_args.kwargs["password"] == "s3cret-pass"
    assert "s3cret-pass" not in result.output


def test_a_wrong_passphrase_is_a_clear_error_without_the_secret(tmp_path: Path, snowflake: Any) -> None:
    pem = rsa_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"right-phrase")
    )
    (tmp_path / "k.p8").write_bytes(pem)
    root = project(tmp_path, "  private_key_file: k.p8\n  private_key_passphrase: ${SF_PASSPHRASE}")
    result = cli(root, "plan", env={"SF_PASSPHRASE": "wrong-phrase"})
    assert result.exit_code == 2, result.output
    assert "cannot open the warehouse: cannot load the private_key_file" in result.output
    assert "k.p8" in result.output and "wrong-phrase" not in result.output
    assert not snowflake.called


def test_a_missing_secret_names_the_variable(tmp_path: Path, snowflake: Any) -> None:
    root = project(tmp_path, "  password: ${SF_PASSWORD}")
    result = cli(root, "plan")
    assert result.exit_code == 2
    assert "syncs.yaml:" in result.output and "environment variable SF_PASSWORD is not set" in result.output


def test_incomplete_settings_are_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "syncs.yaml").write_text("version: 1\nwarehouse:\n  type: snowflake\n  account: a\n  password: x\n")
    result = cli(tmp_path, "validate", "--offline")
    assert result.exit_code == 2
    assert "syncs.yaml:2:1: warehouse: a snowflake warehouse needs `url` or `user`, `database`" in result.output


def test_generated_snowflake_sql_leaves_lower_case_names_unquoted(tmp_path: Path, snowflake: Any) -> None:
    """fakesnow is DuckDB underneath, where identifiers never depend on case; real Snowflake
    folds unquoted names to upper case, so "user_id" (quoted) would miss the column USER_ID.
    Checked on the SQL itself: lower-case names unquoted, others quoted."""
    from activation.project.loader import load_project
    from activation.session import Session

    root = project(tmp_path, "  password: ${SF_PASSWORD}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SF_PASSWORD", "pw-for-test")
        with Session(load_project(root), dry_run=True) as s:
            prepared = s.prepare(["users"])["users"]
            q = prepared.query
            differ = s.differ
            # the diff's own temporary table is quoted on purpose ('-' keeps it apart from models)
            stats = differ.key_stats(s.conn, q)
            sql = differ._classify(q, stats) + differ.sql(q, stats).replace(differ.differing(q), "")  # type: ignore[attr-defined]
            assert differ.differing(q) == '"activation__diff-users"'  # type: ignore[attr-defined]
            assert s.warehouse.quote("Plan") == '"Plan"' and s.warehouse.quote("plan") == "plan"
            assert s.warehouse.relation("user__traits", temp=False) == "activation.user__traits"
            assert s.state.relation("delivered") == "activation_state.delivered"
    assert '"' not in sql
    assert "OBJECT_CONSTRUCT_KEEP_NULL('email', src.email, 'plan', src.plan)" in sql


def test_run_and_status_through_the_cli_with_the_state_in_snowflake(tmp_path: Path, snowflake: Any) -> None:
    """`validate` compiles every model; `run` takes the sync's lease in the state store (a MERGE on Snowflake, which has no
    ON CONFLICT), delivers, records the run; `status` reads it back."""
    root = project(tmp_path, "  password: ${SF_PASSWORD}")
    env = {"SF_PASSWORD": "pw-for-test"}
    checked = cli(root, "validate", env=env)  # every model compiled as a temporary view
    assert checked.exit_code == 0, checked.output
    first = cli(root, "run", "--json", env=env)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["syncs"][0]["status"] == "success"
    assert (root / "out" / "users.csv").read_text().splitlines()[1:] == ["a@example.com,pro"]
    again = cli(root, "run", "--json", env=env)
    assert json.loads(again.stdout)["syncs"][0]["status"] == "up_to_date", again.output
    status = cli(root, "status", "--json", env=env)
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["syncs"][0]["status"] == "up_to_date"  # the last run sent nothing: status says what run said
