"""The emulated Mailchimp account: audiences (lists), merge fields, members, tags.

Pure state and Mailchimp's rules, no HTTP: the server turns requests into calls here and
answers what these return. Rules modelled (from the Marketing API 3.0 reference and the
error texts Mailchimp is known to return):

- a member is keyed by its subscriber hash, the MD5 of the lower-cased email address;
- batch subscribe (`POST /lists/{id}`) takes at most 500 members; an existing member is an
  ``ERROR_CONTACT_EXISTS`` error unless ``update_existing``; each member's problems are
  per-member errors, the others are applied;
- an unsubscribed or cleaned member cannot be (re)subscribed through the API (it is "in a
  compliance state"); a permanently deleted one cannot be re-imported at all; an archived
  one comes back when subscribed again;
- merge fields must match their type (number, date ``YYYY-MM-DD``, birthday ``MM/DD``, phone,
  address, zip, url, radio/dropdown choices, text ≤ 255 characters); required ones must be
  given for a new member unless ``skip_merge_validation``; unknown merge tags are ignored;
- tags are static segments: members are tagged and untagged in bulk (≤ 500 each way) or one
  at a time, and a tag named on a member that does not exist yet is created.

The caller holds the emulator's lock around every method.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

BATCH_LIMIT = 500
STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
MERGE_TYPES = ("text", "number", "address", "phone", "date", "url", "imageurl", "radio", "dropdown", "birthday", "zip")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_BIRTHDAY = re.compile(r"^(0[1-9]|1[0-2])/(0[1-9]|[12]\d|3[01])$")
_US_PHONE = re.compile(r"^\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}$")
_ZIP = re.compile(r"^\d{5}$")


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


class Problem(Exception):
    """A request-level error: answered as problem+json with this status."""

    def __init__(self, status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.errors = status, title, detail, errors


class MemberError(Exception):
    """One member's problem inside a batch (or a 400 on a single-member call)."""

    def __init__(
        self, error: str, *, code: str = "ERROR_GENERIC", title: str = "Invalid Resource", field: str = "", field_message: str = ""
    ) -> None:
        super().__init__(error)
        self.error, self.code, self.title, self.field, self.field_message = error, code, title, field, field_message

    def batch_entry(self, email: str) -> dict[str, str]:
        return {
            "email_address": email,
            "error": self.error,
            "error_code": self.code,
            "field": self.field,
            "field_message": self.field_message,
        }


@dataclass
class MergeField:
    merge_id: int
    tag: str
    name: str
    type: str = "text"
    required: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self, list_id: str) -> dict[str, Any]:
        return {
            "merge_id": self.merge_id,
            "tag": self.tag,
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "default_value": "",
            "public": False,
            "display_order": self.merge_id,
            "options": self.options,
            "help_text": "",
            "list_id": list_id,
            "_links": [],
        }

    def check(self, value: Any) -> Any:
        """The stored value, or MemberError with Mailchimp's field message."""
        if value is None or value == "":
            return ""
        t = self.type

        def bad(message: str) -> MemberError:
            return MemberError("Your merge fields were invalid.", field=self.tag, field_message=message)

        if t == "number":
            if isinstance(value, bool):
                raise bad("Please enter a number")
            try:
                float(value)
            except (TypeError, ValueError):
                raise bad("Please enter a number") from None
            return value
        if t == "address":
            if not isinstance(value, dict) or not all(value.get(k) for k in ("addr1", "city", "state", "zip")):
                raise bad("Please enter a complete address")
            return {k: str(value.get(k, "")) for k in ("addr1", "addr2", "city", "state", "zip", "country")}
        if not isinstance(value, (str, int, float)) or isinstance(value, bool) and t != "text":
            raise bad("Please enter a value")
        text = str(value)
        if t == "text" and len(text) > 255:
            raise bad("Please enter a value of 255 characters or fewer")
        if t == "date" and not _valid_date(text):
            raise bad("Please enter the date")
        if t == "birthday" and not _BIRTHDAY.match(text):
            raise bad("Please enter a month (01-12) and a day (01-31) separated by a slash.")
        if t == "phone" and self.options.get("phone_format") == "US" and not _US_PHONE.match(text):
            raise bad("Please enter a complete US phone number.")
        if t == "zip" and not _ZIP.match(text):
            raise bad("Please enter a valid 5-digit US zip code.")
        if t in ("url", "imageurl") and not text.startswith(("http://", "https://")):
            raise bad("Please enter a valid URL.")
        if t in ("radio", "dropdown") and text not in self.options.get("choices", []):
            raise bad("Please choose one of the options.")
        return text


def _valid_date(text: str) -> bool:
    if not _DATE.match(text):
        return False
    try:
        datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return True


@dataclass
class Member:
    email_address: str
    status: str
    merge_fields: dict[str, Any]
    tags: set[int] = field(default_factory=set)  # segment ids
    timestamp_signup: str = field(default_factory=_now)
    last_changed: str = field(default_factory=_now)

    @property
    def id(self) -> str:
        return subscriber_hash(self.email_address)


@dataclass
class Segment:
    id: int
    name: str
    members: set[str] = field(default_factory=set)  # subscriber hashes


@dataclass
class AudienceList:
    id: str
    name: str
    merge_fields: dict[str, MergeField] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)  # archived ones have status "archived"
    forgotten: set[str] = field(default_factory=set)  # permanently deleted: never re-imported
    segments: dict[int, Segment] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        counts = {s: sum(1 for m in self.members.values() if m.status == s) for s in ("subscribed", "unsubscribed", "cleaned")}
        return {
            "id": self.id,
            "web_id": abs(hash(self.id)) % 10**6,
            "name": self.name,
            "contact": {},
            "permission_reminder": "",
            "use_archive_bar": False,
            "campaign_defaults": {},
            "notify_on_subscribe": "",
            "notify_on_unsubscribe": "",
            "date_created": _now(),
            "list_rating": 0,
            "email_type_option": False,
            "subscribe_url_short": "",
            "subscribe_url_long": "",
            "beamer_address": "",
            "visibility": "prv",
            "double_optin": False,
            "has_welcome": False,
            "marketing_permissions": False,
            "modules": [],
            "stats": {
                "member_count": counts["subscribed"],
                "unsubscribe_count": counts["unsubscribed"],
                "cleaned_count": counts["cleaned"],
                "total_contacts": len(self.members),
            },
            "_links": [],
        }


class Account:
    """Every audience of one Mailchimp account."""

    def __init__(self) -> None:
        self.lists: dict[str, AudienceList] = {}
        self._ids = itertools.count(1)

    # -- set-up -------------------------------------------------------------------------

    def create_list(self, name: str, list_id: str | None = None, *, default_merge_fields: bool = True) -> AudienceList:
        list_id = list_id or hashlib.md5(f"{name}{next(self._ids)}".encode()).hexdigest()[:10]
        if list_id in self.lists:
            raise ValueError(f"list {list_id} exists")
        audience = AudienceList(list_id, name)
        self.lists[list_id] = audience
        if default_merge_fields:  # every new Mailchimp audience starts with these
            for tag, name_, type_ in (
                ("FNAME", "First Name", "text"),
                ("LNAME", "Last Name", "text"),
                ("ADDRESS", "Address", "address"),
                ("PHONE", "Phone Number", "phone"),
                ("BIRTHDAY", "Birthday", "birthday"),
            ):
                self.add_merge_field(list_id, tag, type_, name=name_)
        return audience

    def audience(self, list_id: str) -> AudienceList:
        if list_id not in self.lists:
            raise Problem(404, "Resource Not Found", "The requested resource could not be found.")
        return self.lists[list_id]

    def add_merge_field(
        self,
        list_id: str,
        tag: str,
        type: str = "text",
        *,
        name: str | None = None,
        required: bool = False,
        options: dict[str, Any] | None = None,
    ) -> MergeField:
        audience = self.audience(list_id)
        if type not in MERGE_TYPES:
            raise Problem(400, "Invalid Resource", f"The merge field type {type!r} is not valid.")
        if not re.fullmatch(r"[A-Z0-9_]{1,10}", tag):
            raise Problem(400, "Invalid Resource", "Merge tags must be 1-10 upper-case letters, digits or underscores.")
        if tag in audience.merge_fields:
            raise Problem(400, "Invalid Resource", f'A Merge Field with the tag "{tag}" already exists for this list.')
        mf = MergeField(len(audience.merge_fields) + 1, tag, name or tag.title(), type, required, dict(options or {}))
        audience.merge_fields[tag] = mf
        return mf

    def segment_by_name(self, audience: AudienceList, name: str, *, create: bool = False) -> Segment | None:
        for seg in audience.segments.values():
            if seg.name == name:
                return seg
        if not create:
            return None
        seg = Segment(next(self._ids), name)
        audience.segments[seg.id] = seg
        return seg

    def create_segment(self, list_id: str, name: str, emails: list[str]) -> Segment:
        audience = self.audience(list_id)
        if not name:
            raise Problem(
                400,
                "Invalid Resource",
                "The resource submitted could not be validated.",
                [{"field": "name", "message": "This value should not be blank."}],
            )
        if self.segment_by_name(audience, name):
            raise Problem(400, "Invalid Resource", "Sorry, that tag already exists.")
        seg = self.segment_by_name(audience, name, create=True)
        assert seg is not None
        self._tag(audience, seg, emails, add=True)
        return seg

    # -- members ------------------------------------------------------------------------

    def member(self, list_id: str, hash_or_email: str) -> Member:
        audience = self.audience(list_id)
        key = subscriber_hash(hash_or_email) if "@" in hash_or_email else hash_or_email.lower()
        if key not in audience.members:
            raise Problem(404, "Resource Not Found", "The requested resource could not be found.")
        return audience.members[key]

    def _merge(self, audience: AudienceList, member: Member | None, given: Any, *, new: bool, skip_validation: bool) -> dict[str, Any]:
        if given is not None and not isinstance(given, dict):
            raise MemberError(
                "The resource submitted could not be validated.",
                field="merge_fields",
                field_message="Schema describes object, " + type(given).__name__ + " found instead",
            )
        merged = dict(member.merge_fields) if member is not None else {t: "" for t in audience.merge_fields}
        for tag, value in (given or {}).items():
            mf = audience.merge_fields.get(tag)
            if mf is not None:  # unknown merge tags are ignored, as Mailchimp does
                merged[tag] = mf.check(value)
        if new and not skip_validation:
            for mf in audience.merge_fields.values():
                if mf.required and merged.get(mf.tag) in (None, ""):
                    raise MemberError("Your merge fields were invalid.", field=mf.tag, field_message="Please enter a value")
        return merged

    def upsert(
        self, list_id: str, body: dict[str, Any], *, update_existing: bool, skip_validation: bool = False, email: str | None = None
    ) -> tuple[Member, bool]:
        """Apply one member write; (member, created). MemberError when refused.

        `status` applies to new and existing members alike (batch, PUT, PATCH);
        `status_if_new` (PUT) only to a member that is not on the list yet.
        """
        audience = self.audience(list_id)
        email = str(body.get("email_address") or email or "").strip()
        if not _EMAIL.match(email):
            raise MemberError(
                f"{email} looks fake or invalid, please enter a real email address.",
                field="email_address",
                field_message="Please provide a valid email address.",
            )
        key = subscriber_hash(email)
        if key in audience.forgotten:
            raise MemberError(
                f"{email} was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list.",
                title="Forgotten Email Not Subscribed",
            )
        existing = audience.members.get(key)
        live = existing is not None and existing.status != "archived"
        if live and not update_existing:
            raise MemberError(
                f"{email} is already a list member. Use PUT to insert or update list members.",
                code="ERROR_CONTACT_EXISTS",
                title="Member Exists",
            )
        status = body.get("status")
        if not live:
            status = status or body.get("status_if_new")
            if status is None:
                raise MemberError(
                    "The resource submitted could not be validated.", field="status", field_message="This value should not be blank."
                )
        if status is not None and status not in STATUSES:
            raise MemberError(
                "The resource submitted could not be validated.",
                field="status",
                field_message=f"Value is not one of: {', '.join(STATUSES)}",
            )
        if status == "cleaned" and not live:
            raise MemberError(
                "The resource submitted could not be validated.", field="status", field_message="A new member cannot be cleaned."
            )
        if live and existing is not None and existing.status in ("unsubscribed", "cleaned") and status in ("subscribed", "pending"):
            raise MemberError(
                f"{email} is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.",
                title="Member In Compliance State",
            )
        merged = self._merge(audience, existing if live else None, body.get("merge_fields"), new=not live, skip_validation=skip_validation)
        if live and existing is not None:
            existing.merge_fields = merged
            if status is not None and status != existing.status:
                existing.status = status
            existing.last_changed = _now()
            member, created = existing, False
        else:
            member = Member(email, str(status), merged, tags=existing.tags if existing else set())
            audience.members[key] = member
            created = existing is None
        if isinstance(body.get("tags"), list):  # add/update endpoints take tag names
            names = [t if isinstance(t, str) else str(t.get("name", "")) for t in body["tags"]]
            for name in filter(None, names):
                seg = self.segment_by_name(audience, name, create=True)
                assert seg is not None
                self._tag(audience, seg, [email], add=True)
        return member, created

    def batch_subscribe(self, list_id: str, body: Any, *, skip_validation: bool) -> dict[str, Any]:
        audience = self.audience(list_id)
        members = body.get("members") if isinstance(body, dict) else None
        if not isinstance(members, list):
            raise Problem(
                400,
                "Invalid Resource",
                "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
                [{"field": "members", "message": "Schema describes array, NULL found instead"}],
            )
        if len(members) > BATCH_LIMIT:
            raise Problem(
                400,
                "Invalid Resource",
                "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
                [{"field": "members", "message": f"Schema describes array of at most {BATCH_LIMIT} items, {len(members)} found instead"}],
            )
        update_existing = bool(body.get("update_existing"))
        created, updated, errors = [], [], []
        for item in members:
            email = str(item.get("email_address", "")) if isinstance(item, dict) else ""
            try:
                if not isinstance(item, dict):
                    raise MemberError(
                        "The resource submitted could not be validated.", field="members", field_message="Schema describes object"
                    )
                member, new = self.upsert(list_id, item, update_existing=update_existing, skip_validation=skip_validation)
            except MemberError as e:
                errors.append(e.batch_entry(email))
                continue
            (created if new else updated).append(self.member_json(audience, member))
        return {
            "new_members": created,
            "updated_members": updated,
            "errors": errors,
            "total_created": len(created),
            "total_updated": len(updated),
            "error_count": len(errors),
            "_links": [],
        }

    def archive(self, list_id: str, hash_: str) -> None:
        member = self.member(list_id, hash_)
        if member.status == "archived":
            raise Problem(404, "Resource Not Found", "The requested resource could not be found.")
        member.status = "archived"
        member.last_changed = _now()

    def delete_permanent(self, list_id: str, hash_: str) -> None:
        audience = self.audience(list_id)
        member = self.member(list_id, hash_)
        del audience.members[member.id]
        for seg in audience.segments.values():
            seg.members.discard(member.id)
        audience.forgotten.add(member.id)

    # -- tags ---------------------------------------------------------------------------

    def _tag(self, audience: AudienceList, seg: Segment, emails: list[str], *, add: bool) -> tuple[list[Member], list[str]]:
        done, missing = [], []
        for email in emails:
            member = audience.members.get(subscriber_hash(str(email)))
            if member is None or member.status == "archived":
                missing.append(str(email))
                continue
            if add:
                seg.members.add(member.id)
                member.tags.add(seg.id)
            elif member.id in seg.members:
                seg.members.discard(member.id)
                member.tags.discard(seg.id)
            else:
                continue
            done.append(member)
        return done, missing

    def member_tags(self, list_id: str, hash_: str, tags: Any) -> None:
        audience = self.audience(list_id)
        member = self.member(list_id, hash_)
        if not isinstance(tags, list):
            raise Problem(
                400,
                "Invalid Resource",
                "The resource submitted could not be validated.",
                [{"field": "tags", "message": "Schema describes array"}],
            )
        for tag in tags:
            if not isinstance(tag, dict) or not tag.get("name") or tag.get("status") not in ("active", "inactive"):
                raise Problem(
                    400,
                    "Invalid Resource",
                    "The resource submitted could not be validated.",
                    [{"field": "tags", "message": "each tag needs a name and a status of active or inactive"}],
                )
            seg = self.segment_by_name(audience, str(tag["name"]), create=tag["status"] == "active")
            if seg is not None:
                self._tag(audience, seg, [member.email_address], add=tag["status"] == "active")

    def segment_batch(self, list_id: str, segment_id: int, body: Any) -> dict[str, Any]:
        audience = self.audience(list_id)
        seg = audience.segments.get(segment_id)
        if seg is None:
            raise Problem(404, "Resource Not Found", "The requested resource could not be found.")
        add = body.get("members_to_add", []) if isinstance(body, dict) else None
        remove = body.get("members_to_remove", []) if isinstance(body, dict) else None
        if not isinstance(add, list) or not isinstance(remove, list):
            raise Problem(
                400,
                "Invalid Resource",
                "The resource submitted could not be validated.",
                [{"field": "members_to_add", "message": "Schema describes array"}],
            )
        for name, items in (("members_to_add", add), ("members_to_remove", remove)):
            if len(items) > BATCH_LIMIT:
                raise Problem(
                    400,
                    "Invalid Resource",
                    "The resource submitted could not be validated.",
                    [{"field": name, "message": f"A maximum of {BATCH_LIMIT} members can be sent."}],
                )
        added, missing_add = self._tag(audience, seg, add, add=True)
        removed, missing_remove = self._tag(audience, seg, remove, add=False)
        errors = [
            {"email_addresses": missing, "error": "Email addresses were not found in the list"}
            for missing in (missing_add, missing_remove)
            if missing
        ]
        return {
            "members_added": [self.member_json(audience, m) for m in added],
            "members_removed": [self.member_json(audience, m) for m in removed],
            "errors": errors,
            "total_added": len(added),
            "total_removed": len(removed),
            "error_count": sum(len(e["email_addresses"]) for e in errors),
            "_links": [],
        }

    # -- JSON ---------------------------------------------------------------------------

    def member_json(self, audience: AudienceList, m: Member) -> dict[str, Any]:
        tags = [{"id": i, "name": audience.segments[i].name} for i in sorted(m.tags) if i in audience.segments]
        first, last = str(m.merge_fields.get("FNAME") or ""), str(m.merge_fields.get("LNAME") or "")
        return {
            "id": m.id,
            "email_address": m.email_address,
            "unique_email_id": m.id[:10],
            "contact_id": m.id,
            "full_name": f"{first} {last}".strip(),
            "web_id": int(m.id[:6], 16),
            "email_type": "html",
            "status": m.status,
            "merge_fields": dict(m.merge_fields),
            "interests": {},
            "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
            "ip_signup": "",
            "timestamp_signup": m.timestamp_signup,
            "ip_opt": "",
            "timestamp_opt": m.timestamp_signup,
            "member_rating": 2,
            "last_changed": m.last_changed,
            "language": "",
            "vip": False,
            "email_client": "",
            "location": {},
            "source": "API - Generic",
            "tags_count": len(tags),
            "tags": tags,
            "list_id": audience.id,
            "_links": [],
        }

    def segment_json(self, audience: AudienceList, seg: Segment) -> dict[str, Any]:
        return {
            "id": seg.id,
            "name": seg.name,
            "member_count": len(seg.members),
            "type": "static",
            "created_at": _now(),
            "updated_at": _now(),
            "options": {},
            "list_id": audience.id,
            "_links": [],
        }
