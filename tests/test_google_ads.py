"""Google Ads Customer Match end to end: the CLI, a DuckDB warehouse, our REST client, real
HTTP to the local emulator (offline user data jobs, partial failures, long-running operations,
the OAuth token endpoint)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ad_project import AdProject, assert_impossible_phone_rejected, make_ad_project, raw_identifiers, set_trunk_and_impossible_phones, sha

from activation_emulators.google_ads import GoogleAdsEmulator

DEV_TOKEN = "dev-token-abc123"
DESTINATION = """
google:
  type: google_ads
  customer_id: 123-456-7890
  login_customer_id: "111-222-3333"
  developer_token: "${GOOGLE_ADS_DEVELOPER_TOKEN}"
  client_id: cid.apps.googleusercontent.com
  client_secret: "${GOOGLE_ADS_CLIENT_SECRET}"
  refresh_token: "${GOOGLE_ADS_REFRESH_TOKEN}"
  base_url: "${GOOGLE_ADS_URL}"
  token_url: "${GOOGLE_TOKEN_URL}"
  ad_user_data_consent: GRANTED
  retry_backoff_seconds: 0.01
  job_poll_seconds: 0.01
  job_wait_seconds: 5
"""
SYNC = """
members_to_google:
  from: members
  to: google
  mode: audience
  audience: Loyal members
  match: {email: email}
  fields: {phone: phone, first_name: first_name, last_name: last_name, country_code: country, postal_code: postal_code}
  max_removal: 100%
"""


@pytest.fixture
def google() -> Iterator[GoogleAdsEmulator]:
    with GoogleAdsEmulator(
        developer_tokens={DEV_TOKEN},
        client_id="cid.apps.googleusercontent.com",
        client_secret="oauth-secret",
        refresh_tokens={"1//refresh"},
        managers={"1234567890": "1112223333"},
    ) as emu:
        yield emu


def project(tmp_path: Path, google: GoogleAdsEmulator) -> AdProject:
    p = make_ad_project(tmp_path / "p", DESTINATION, SYNC)
    p.sql("UPDATE src.people SET email = 'Jane.Doe+ads' || person_id || '@GMail.com' WHERE person_id IN ('p0007', 'p0009')")
    p.env = {
        "GOOGLE_ADS_DEVELOPER_TOKEN": DEV_TOKEN,
        "GOOGLE_ADS_CLIENT_SECRET": "oauth-secret",
        "GOOGLE_ADS_REFRESH_TOKEN": "1//refresh",
        "GOOGLE_ADS_URL": google.url,
        "GOOGLE_TOKEN_URL": google.token_url,
    }
    return p


def expected(p: AdProject) -> set[frozenset[tuple[str, str]]]:
    """Google's documented normalisation, spelled out: emails trimmed and lower-cased, gmail
    without dots or +tag; phones E.164 with +; names trimmed and lower-cased; country and
    postal code unhashed."""
    out = set()
    for r in p.people():
        email = r["email"].strip().lower()
        local, domain = email.split("@")
        if domain == "gmail.com":
            email = local.split("+")[0].replace(".", "") + "@" + domain
        ids = {
            ("hashedEmail", sha(email)),
            ("addressInfo", f"{sha(r['first_name'].lower())}|{sha('smith')}|{r['country']}|{r['postal_code']}"),
        }
        if r["phone"]:
            ids.add(("hashedPhoneNumber", sha("+" + "".join(c for c in r["phone"] if c.isdigit()))))
        out.add(frozenset(ids))
    return out


def held(google: GoogleAdsEmulator) -> set[frozenset[tuple[str, str]]]:
    return google.members(google.list_named("Loyal members"))


def test_first_run_adds_every_member_through_one_job_and_an_unchanged_run_sends_nothing(tmp_path: Path, google: GoogleAdsEmulator) -> None:
    p = project(tmp_path, google)
    result = p.run("members_to_google")
    assert result["status"] == "success" and result["acknowledged"] == 45
    assert held(google) == expected(p)
    assert ("hashedEmail", sha("janedoe@gmail.com")) in {i for person in held(google) for i in person}
    [job] = google.jobs()
    assert job.status == "SUCCESS" and [k for k, _ in job.operations] == ["create"] * 45
    details = result["destination_report"]["details"]
    assert details["jobs"] == [
        {"job": job.resource, "kind": "create", "operations": 45, "operation": job.operation_name, "status": "SUCCESS"}
    ]
    assert details["user_list"] == google.list_named("Loyal members") == details["created_user_list"]
    assert google.user_lists()[details["user_list"]]["uploadKeyType"] == "CONTACT_INFO"

    calls = len(google.request_log)
    assert p.run("members_to_google")["status"] == "up_to_date"
    assert len(google.request_log) == calls and google.token_requests == 1
    assert job.resource in p.cli("history", "members_to_google").stdout


def test_leaving_rows_and_changed_identifiers_go_through_a_removal_job_after_the_additions(
    tmp_path: Path, google: GoogleAdsEmulator
) -> None:
    """Google refuses create and remove operations in one job: new identifiers go in a create
    job, then every identifier no member holds any more (those of the rows that left, and the
    old email of the row that changed) in one remove job."""
    p = project(tmp_path, google)
    p.run("members_to_google")
    p.sql("UPDATE src.people SET member = false WHERE person_id IN ('p0001', 'p0002')")
    p.sql("UPDATE src.people SET email = 'moved.' || trim(email) WHERE person_id = 'p0004'")
    result = p.run("members_to_google")
    assert result["acknowledged"] == 1 + result["released"] and result["released"] >= 3
    assert held(google) == expected(p)
    addition, removal = google.jobs()[1:]
    assert [k for k, _ in addition.operations] == ["create"]
    assert [k for k, _ in removal.operations] == ["remove"] * result["released"]
    assert [j["kind"] for j in result["destination_report"]["details"]["jobs"]] == ["create", "remove"]


def test_partial_failure_rejects_exactly_the_failing_rows(tmp_path: Path, google: GoogleAdsEmulator) -> None:
    p = project(tmp_path, google)
    p.sql("UPDATE src.people SET country = 'ZZ' WHERE person_id IN ('p0010', 'p0021')")  # two letters, no country
    result = p.run("members_to_google", expect=1)
    assert result["status"] == "partial" and result["acknowledged"] == 43 and result["rejected_by_destination"] == 2
    rejected = {e["row_key"]: e["reason"] for e in p.json("history", "members_to_google")["runs"][0]["rejected_rows"]}
    assert rejected == dict.fromkeys(["p0010", "p0021"], "Google rejected this member: INVALID_COUNTRY_CODE: The country code is invalid.")
    assert held(google) == {m for m in expected(p) if not any(k == "addressInfo" and "|ZZ|" in v for k, v in m)}
    assert len(held(google)) == 43


def test_a_token_that_expires_mid_run_is_refreshed_and_a_revoked_refresh_token_stops_the_sync(
    tmp_path: Path, google: GoogleAdsEmulator
) -> None:
    p = project(tmp_path, google)
    google.expire_access_tokens(after=3)  # the token dies between two calls of the run
    result = p.run("members_to_google")
    assert result["acknowledged"] == 45 and result["destination_report"]["details"]["token_refreshes"] == 2
    assert held(google) == expected(p)
    assert [r.status for r in google.request_log].count(401) == 1

    google.revoke_refresh_tokens()
    p.sql("UPDATE src.people SET member = true")
    result = p.run("members_to_google", expect=1)
    assert result["status"] == "failed"
    assert result["error"] == (
        "Google refused the refresh token (invalid_grant: Token has been expired or revoked.); "
        "create a new refresh token for the OAuth client"
    )
    assert "1//refresh" not in str(result) and "oauth-secret" not in str(result)


def test_a_job_google_reports_failed_is_sent_again_next_run(tmp_path: Path, google: GoogleAdsEmulator) -> None:
    p = project(tmp_path, google)
    google.fail_next_job()
    failed = p.run("members_to_google", expect=1)
    assert failed["status"] == "failed" and "failed" in failed["error"] and "sent again next run" in failed["error"]
    assert held(google) == set() and p.sql("SELECT count(*) FROM activation_state.delivered") == [(0,)]
    assert p.run("members_to_google")["acknowledged"] == 45
    assert held(google) == expected(p)


def test_a_run_whose_answer_was_lost_is_followed_by_the_jobs_status(tmp_path: Path, google: GoogleAdsEmulator) -> None:
    """The retried `:run` finds the job started (JOB_ALREADY_STARTED): the push waits for the job's
    own status instead of failing, and a job that then fails is still sent again next run."""
    p = project(tmp_path, google)
    google.faults.inject("drop_after", match=":run")  # Google starts the job; its answer is lost
    result = p.run("members_to_google")
    assert result["status"] == "success" and result["acknowledged"] == 45
    assert held(google) == expected(p)
    [job] = google.jobs()
    assert result["destination_report"]["details"]["jobs"] == [
        {"job": job.resource, "kind": "create", "operations": 45, "operation": None, "status": "SUCCESS"}
    ]
    # Google ran the job (its answer was dropped on the way), then refused the retry.
    assert [r.status for r in google.request_log if r.path.endswith(":run")] == [200, 400]

    p.sql("UPDATE src.people SET member = false WHERE person_id = 'p0001'")
    google.fail_next_job()
    google.faults.inject("drop_after", match=":run")
    failed = p.run("members_to_google", expect=1)
    assert failed["status"] == "failed" and "FAILED" in failed["error"] and "sent again next run" in failed["error"]
    again = p.run("members_to_google")  # p0001's identifiers, each released once
    assert again["acknowledged"] == again["released"] > 0
    assert held(google) == expected(p)


def test_a_user_list_create_whose_answer_was_lost_uses_the_list_it_made(tmp_path: Path, google: GoogleAdsEmulator) -> None:
    p = project(tmp_path, google)
    google.faults.inject("drop_after", match="userLists:mutate")  # the retry is refused: NAME_ALREADY_USED
    result = p.run("members_to_google")
    assert result["status"] == "success" and result["acknowledged"] == 45
    assert len(google.user_lists()) == 1 and held(google) == expected(p)
    assert result["destination_report"]["details"]["created_user_list"] == google.list_named("Loyal members")


def test_resource_exhausted_is_retried_after_googles_delay(tmp_path: Path, google: GoogleAdsEmulator) -> None:
    p = project(tmp_path, google)
    google.throttle_next(2, retry_seconds=0.02)
    result = p.run("members_to_google")
    assert result["status"] == "success" and result["destination_report"]["throttled"] == 2
    assert held(google) == expected(p)


def test_no_raw_email_or_phone_reaches_google(tmp_path: Path, google: GoogleAdsEmulator) -> None:
    p = project(tmp_path, google)
    p.run("members_to_google")
    p.sql("UPDATE src.people SET member = NOT member")
    p.run("members_to_google")
    raw = google.raw_requests()
    assert b"hashedEmail" in raw and b"remove" in raw
    assert [form for form in raw_identifiers(p.people(members_only=False)) if form in raw] == []


def test_validate_explains_googles_identifiers(tmp_path: Path, google: GoogleAdsEmulator) -> None:
    p = project(tmp_path, google)
    plan = p.json("plan", "members_to_google")["plans"][0]
    assert any("below Google Customer Match's minimum of 1,000" in w for w in plan["warnings"])
    text = (p.root / "syncs.yaml").read_text()
    (p.root / "syncs.yaml").write_text(text.replace("postal_code: postal_code}", "zip: postal_code}"))
    out = p.cli("validate", expect=2).output
    assert "'zip' is not a Google Customer Match identifier; did you mean 'postal_code'" in out
    (p.root / "syncs.yaml").write_text(text.replace(", postal_code: postal_code}", "}"))
    out = p.cli("validate", expect=2).output
    assert "address matching needs first_name, last_name, country_code and postal_code; map postal_code too" in out


def test_sandbox_rehearses_both_ad_platforms_without_credentials(tmp_path: Path) -> None:
    from test_meta_audience import DESTINATION as META_DESTINATION
    from test_meta_audience import SYNC as META_SYNC

    p = make_ad_project(tmp_path / "p", DESTINATION + META_DESTINATION, SYNC + META_SYNC)
    result = p.json("run", "--sandbox")  # no token, no URL in the environment: emulators stand in
    assert [(s["sync"], s["status"], s["acknowledged"]) for s in result["syncs"]] == [
        ("members_to_google", "success", 45),
        ("members_to_meta", "success", 45),
    ]
    assert not (p.root / ".activation").exists() or not list((p.root / ".activation").glob("*.db"))
    assert p.sql("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'activation_state'") == [(0,)]


def test_validate_remote_checks_credentials_and_lists(tmp_path: Path, google: GoogleAdsEmulator) -> None:
    p = project(tmp_path, google)
    p.cli("validate", "--remote")
    (p.root / "syncs.yaml").write_text((p.root / "syncs.yaml").read_text().replace("audience: Loyal members", "audience: '777'"))
    assert "customer 1234567890 has no user list with id 777" in p.cli("validate", "--remote", expect=2).output
    google.revoke_refresh_tokens()
    assert "Google refused the refresh token (invalid_grant" in p.cli("validate", "--remote", expect=2).output
    assert google.user_lists() == {}  # validate created nothing


def test_an_impossible_phone_rejects_its_row_with_the_reason_and_the_others_are_delivered(
    tmp_path: Path, google: GoogleAdsEmulator
) -> None:
    p = project(tmp_path, google)
    set_trunk_and_impossible_phones(p)
    result = p.run("members_to_google", expect=1)
    assert_impossible_phone_rejected(p, "members_to_google", result, held(google), "hashedEmail", "hashedPhoneNumber", e164_prefix="+")


def test_a_refusal_answering_a_retried_add_operations_leaves_its_rows_possibly_delivered(tmp_path: Path, google: GoogleAdsEmulator) -> None:
    """The first addOperations call lands in the job and its answer is lost; the retry is
    refused. The job runs with the other chunks, so it adds those members too: recorded as
    rejected, they would stay in the list for good once they leave the model (issue 13)."""
    p = project(tmp_path, google)
    (p.root / "syncs.yaml").write_text(
        (p.root / "syncs.yaml").read_text().replace("job_wait_seconds: 5\n", "job_wait_seconds: 5\n    operations_per_request: 20\n")
    )
    google.faults.inject("drop_after", match="addOperations")
    google.faults.inject("error", status=400, match="addOperations")
    result = p.run("members_to_google", expect=None)
    assert google.faults.injected == {"drop_after": 1, "error": 1}
    assert result["unconfirmed"] == 20 and result["rejected_by_destination"] == 0 and result["acknowledged"] == 25, result
    assert held(google) == expected(p)  # the job took the first chunk from the attempt whose answer was lost
    first_chunk = [r["person_id"] for r in p.people()][:20]
    p.sql("UPDATE src.people SET member = false WHERE person_id IN ({})".format(", ".join(f"'{k}'" for k in first_chunk)))
    assert p.run("members_to_google")["status"] == "success"
    assert held(google) == expected(p) and len(held(google)) == 25


def test_a_2xx_google_answers_with_a_body_that_is_not_json_acknowledges_nothing(tmp_path: Path, google: GoogleAdsEmulator) -> None:
    p = project(tmp_path, google)
    google.faults.inject("garble", match="addOperations")
    result = p.run("members_to_google", expect=None)
    assert result["unconfirmed"] == 45 and result["acknowledged"] == 0, result
    assert held(google) == expected(p)  # the operations were in the job, and it ran
    assert p.run("members_to_google")["status"] == "success"
    assert held(google) == expected(p)


def test_a_phone_two_members_share_stays_when_one_leaves(tmp_path: Path, google: GoogleAdsEmulator) -> None:
    """Two people share an office phone; one leaves: the shared hashed phone stays in the list
    for the other (removed only when no member holds it)."""
    p = project(tmp_path, google)
    p.sql("UPDATE src.people SET phone = '+44 20 7946 0001' WHERE person_id = 'p0002'")  # p0001's number
    p.json("run", "members_to_google")
    p.sql("UPDATE src.people SET member = false WHERE person_id = 'p0001'")
    p.json("run", "members_to_google")
    phone = ("hashedPhoneNumber", sha("+442079460001"))
    assert any(phone in person for person in held(google)), "p0002 still holds the shared phone"
    assert held(google) == expected(p)
