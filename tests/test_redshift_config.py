"""Redshift connection settings from syncs.yaml and the environment, as sqlalchemy-redshift
hands them to Amazon's `redshift_connector.connect` (IAM cannot be exercised without AWS: what
the driver is given is checked instead), and the settings a wrong combination is refused for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redshift_connector
from pydantic import TypeAdapter, ValidationError

from activation.warehouse.registry import open_warehouse
from activation.warehouse.spec import WarehouseSpec


class Handed(Exception):
    """What the dialect handed to redshift_connector.connect."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        super().__init__("connect called")
        self.kwargs = kwargs


def handed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: dict[str, Any]) -> dict[str, Any]:
    def connect(*args: Any, **kwargs: Any) -> Any:
        raise Handed(kwargs)

    monkeypatch.setattr(redshift_connector, "connect", connect)
    spec = TypeAdapter(WarehouseSpec).validate_python({"type": "redshift", **settings})
    engine = open_warehouse(spec, tmp_path).engine
    with pytest.raises(Handed) as got:
        engine.connect()
    return got.value.kwargs


def test_password_auth_verifies_tls_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RS_PASSWORD", "s3cret")
    kw = handed(monkeypatch, tmp_path, {"url": "redshift://svc:${RS_PASSWORD}@c1.abc.eu-west-1.redshift.amazonaws.com:5439/dev"})
    assert kw["host"] == "c1.abc.eu-west-1.redshift.amazonaws.com" and kw["port"] == 5439 and kw["database"] == "dev"
    assert kw["user"] == "svc" and kw["password"] == "s3cret"
    assert kw["ssl"] is True and kw["sslmode"] == "verify-full"
    assert "iam" not in kw


def test_iam_auth_hands_the_cluster_and_the_keys_to_the_driver(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_KEY", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET", "shh")
    kw = handed(
        monkeypatch,
        tmp_path,
        {
            "url": "redshift://c1.abc.eu-west-1.redshift.amazonaws.com:5439/dev",
            "iam": True,
            "cluster_identifier": "c1",
            "region": "eu-west-1",
            "db_user": "activation_svc",
            "access_key_id": "${AWS_KEY}",
            "secret_access_key": "${AWS_SECRET}",
        },
    )
    assert kw["iam"] is True and kw["cluster_identifier"] == "c1" and kw["region"] == "eu-west-1"
    assert kw["db_user"] == "activation_svc" and kw["access_key_id"] == "AKIAEXAMPLE" and kw["secret_access_key"] == "shh"
    assert "password" not in kw


def test_sslmode_disable_turns_tls_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    kw = handed(monkeypatch, tmp_path, {"url": "redshift://svc:pw@localhost:5439/dev", "sslmode": "disable"})
    assert kw["ssl"] is False  # (the dialect's own sslmode default stays: the driver reads it only with ssl on)


@pytest.mark.parametrize(
    "settings,said",
    [
        ({"iam": True}, "needs `cluster_identifier` or `serverless_work_group`"),
        ({"db_user": "x"}, "are for `iam: true`"),
        ({"iam": True, "cluster_identifier": "c", "access_key_id": "k"}, "together"),
    ],
)
def test_a_wrong_combination_is_refused_with_what_to_do(settings: dict[str, Any], said: str) -> None:
    with pytest.raises(ValidationError, match=said):
        TypeAdapter(WarehouseSpec).validate_python({"type": "redshift", "url": "redshift://h:5439/dev", **settings})
