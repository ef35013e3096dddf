"""Lists v3 of the emulated HubSpot: MANUAL/SNAPSHOT/DYNAMIC lists and their memberships."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .replies import Reply, cursor, error, scalar_str
from .store import HubSpotList, ObjectType, now_iso


class ListsApi:
    """Mixed into CrmApi, which owns the lists and the object types they hold."""

    lists: dict[str, HubSpotList]
    _next_list_id: int

    def object_type(self, key: str) -> ObjectType | None:
        raise NotImplementedError

    def _list(self, list_id: str) -> HubSpotList | None:
        return self.lists.get(list_id)

    def create_list(self, body: dict[str, Any]) -> Reply:
        t = self.object_type(body["objectTypeId"])
        if t is None:
            return error(400, f"Unable to infer object type from: {body['objectTypeId']}", "VALIDATION_ERROR")
        if body["processingType"] not in ("MANUAL", "SNAPSHOT", "DYNAMIC"):
            return error(400, f"Invalid processingType: {body['processingType']}", "VALIDATION_ERROR")
        if body["processingType"] == "DYNAMIC" and not body.get("filterBranch"):
            return error(400, "DYNAMIC lists require a filterBranch", "VALIDATION_ERROR")
        if any(lst.name.lower() == body["name"].lower() for lst in self.lists.values()):  # (unconfirmed)
            return error(409, f"A list named {body['name']} already exists.", "CONFLICT")
        now = now_iso()
        lst = HubSpotList(str(self._next_list_id), body["name"], t.type_id, body["processingType"], now, now)
        self._next_list_id += 1
        self.lists[lst.list_id] = lst
        return 200, {"list": lst.to_api()}, {}

    def get_list(self, list_id: str) -> Reply:
        lst = self._list(list_id)
        if lst is None:
            return error(404, f"List does not exist with id: {list_id}", "OBJECT_NOT_FOUND")
        return 200, {"list": lst.to_api()}, {}

    def get_list_by_name(self, object_type_id: str, name: str) -> Reply:
        t = self.object_type(object_type_id)
        for lst in self.lists.values():
            if t and lst.object_type_id == t.type_id and lst.name.lower() == name.lower():
                return 200, {"list": lst.to_api()}, {}
        return error(404, f"List does not exist with name: {name}", "OBJECT_NOT_FOUND")

    def get_lists(self, list_ids: list[str]) -> Reply:
        return 200, {"lists": [self.lists[i].to_api() for i in list_ids if i in self.lists]}, {}

    def delete_list(self, list_id: str) -> Reply:
        if self.lists.pop(list_id, None) is None:
            return error(404, f"List does not exist with id: {list_id}", "OBJECT_NOT_FOUND")
        return 204, None, {}

    def search_lists(self, body: dict[str, Any]) -> Reply:
        query = (body.get("query") or "").lower()
        types = set(body.get("processingTypes") or [])
        ids = set(body.get("listIds") or [])
        found = [
            lst
            for lst in self.lists.values()
            if query in lst.name.lower() and (not types or lst.processing_type in types) and (not ids or lst.list_id in ids)
        ]
        offset, count = int(body.get("offset") or 0), int(body.get("count") or 20)
        page = found[offset : offset + count]
        return (
            200,
            {
                "lists": [lst.to_api(search=True) for lst in page],
                "offset": offset + len(page),
                "hasMore": offset + count < len(found),
                "total": len(found),
            },
            {},
        )

    def change_members(self, list_id: str, add: list[Any], remove: list[Any]) -> Reply:
        lst = self._list(list_id)
        if lst is None:
            return error(404, f"List does not exist with id: {list_id}", "OBJECT_NOT_FOUND")
        if lst.processing_type == "DYNAMIC":
            return error(400, f"List {list_id} is not a MANUAL or SNAPSHOT list", "VALIDATION_ERROR")
        t = self.object_type(lst.object_type_id)
        assert t is not None
        added, removed, missing = [], [], []
        now = now_iso()
        for rec_id in dict.fromkeys(scalar_str(i) for i in add):
            rec = t.records.get(rec_id)
            if rec is None or rec.archived:
                missing.append(rec_id)
            elif rec_id not in lst.members:  # existing members are ignored
                lst.members[rec_id] = now
                added.append(rec_id)
        for rec_id in dict.fromkeys(scalar_str(i) for i in remove):
            if rec_id in lst.members:
                del lst.members[rec_id]
                removed.append(rec_id)
            elif rec_id not in t.records:
                missing.append(rec_id)
        if added or removed:
            lst.updated_at = now
        return 200, {"recordsIdsAdded": added, "recordIdsRemoved": removed, "recordIdsMissing": missing}, {}

    def get_members(self, list_id: str, query: dict[str, list[str]]) -> Reply:
        lst = self._list(list_id)
        if lst is None:
            return error(404, f"List does not exist with id: {list_id}", "OBJECT_NOT_FOUND")
        limit = max(1, min(int((query.get("limit") or ["100"])[0]), 250))
        ids = sorted(lst.members, key=int)
        after, before = cursor((query.get("after") or [""])[0]), cursor((query.get("before") or [""])[0])
        if after is not None:  # after wins over before, as documented
            ids = [i for i in ids if int(i) > after]
        elif before is not None:
            ids = [i for i in reversed(ids) if int(i) < before]
        page = ids[:limit]
        body: dict[str, Any] = {
            "results": [{"recordId": i, "membershipTimestamp": lst.members[i]} for i in page],
            "total": len(lst.members),
        }
        if len(ids) > limit:
            body["paging"] = {"next": {"after": page[-1]}}
        return 200, body, {}

    def list_routes(self, body: Any, q: dict[str, list[str]], v: dict[str, str]) -> dict[str, Callable[[], Reply]]:
        """The lists v3 operations by "METHOD template"."""
        lid = v.get("listId", "")
        return {
            "POST /crm/v3/lists": lambda: self.create_list(body),
            "GET /crm/v3/lists": lambda: self.get_lists(q.get("listIds", [])),
            "GET /crm/v3/lists/{listId}": lambda: self.get_list(lid),
            "DELETE /crm/v3/lists/{listId}": lambda: self.delete_list(lid),
            "GET /crm/v3/lists/object-type-id/{objectTypeId}/name/{listName}": lambda: self.get_list_by_name(
                v["objectTypeId"], v["listName"]
            ),
            "POST /crm/v3/lists/search": lambda: self.search_lists(body),
            "PUT /crm/v3/lists/{listId}/memberships/add": lambda: self.change_members(lid, body, []),
            "PUT /crm/v3/lists/{listId}/memberships/remove": lambda: self.change_members(lid, [], body),
            "PUT /crm/v3/lists/{listId}/memberships/add-and-remove": lambda: self.change_members(
                lid, body.get("recordIdsToAdd") or [], body.get("recordIdsToRemove") or []
            ),
            "GET /crm/v3/lists/{listId}/memberships": lambda: self.get_members(lid, q),
        }
