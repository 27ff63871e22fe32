"""Field-level differences between two household states (version snapshots or proposed states).

A state is the snapshot shape of ``registry.households.snapshot_of``: ``{"household": {...},
"status", "inactive_reason", "members": [{...}, ...]}``. Members are matched by line number:
a line present only in the new state was added, only in the old one removed, in both with
different values changed. Values are compared after normalisation (``5`` equals ``5.0``, an
empty string equals ``None``), so that a form round-trip does not show phantom changes.
"""

from __future__ import annotations

from collections.abc import Mapping

from registry.privacy import MASK, PII_HOUSEHOLD_FIELDS, PII_MEMBER_FIELDS, mask_identifier, mask_member

#: Household-level keys compared besides the household fields.
STATUS_KEYS = ("status", "inactive_reason")
_ID_FIELDS = ("nid_number", "birth_reg_number", "mobile_number")


def _norm(value):
    """A comparable form of a snapshot value."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return round(float(value), 6)
    return value


def same_value(old, new) -> bool:
    """Whether two snapshot values are the same after normalisation."""
    return _norm(old) == _norm(new)


def _field_changes(old: Mapping, new: Mapping, skip: tuple[str, ...] = ()) -> list[dict]:
    keys = [k for k in new if k not in skip] + [k for k in old if k not in new and k not in skip]
    return [{"field": k, "old": old.get(k), "new": new.get(k)} for k in keys if not same_value(old.get(k), new.get(k))]


def members_by_line(state: Mapping | None) -> dict[int, dict]:
    """A state's members keyed by line number."""
    if not state:
        return {}
    return {int(m["line_no"]): dict(m) for m in state.get("members", [])}


def diff_states(old: Mapping | None, new: Mapping | None) -> dict:
    """The field-level difference from ``old`` to ``new`` (either may be None: no household).

    Returns ``{"household": [{"field", "old", "new"}], "status": [...same...], "members": {"added":
    [{"line_no", "member"}], "removed": [{"line_no", "member"}], "changed": [{"line_no", "changes":
    [{"field", "old", "new"}]}]}, "summary": {...counts...}, "is_empty": bool}``.
    """
    old_hh = dict((old or {}).get("household") or {})
    new_hh = dict((new or {}).get("household") or {})
    household = _field_changes(old_hh, new_hh)
    status = [
        {"field": k, "old": (old or {}).get(k), "new": (new or {}).get(k)}
        for k in STATUS_KEYS
        if (old or new) and not same_value((old or {}).get(k), (new or {}).get(k))
    ]
    old_m, new_m = members_by_line(old), members_by_line(new)
    added = [{"line_no": n, "member": new_m[n]} for n in sorted(new_m.keys() - old_m.keys())]
    removed = [{"line_no": n, "member": old_m[n]} for n in sorted(old_m.keys() - new_m.keys())]
    changed = []
    for n in sorted(old_m.keys() & new_m.keys()):
        changes = _field_changes(old_m[n], new_m[n], skip=("line_no",))
        if changes:
            changed.append({"line_no": n, "changes": changes})
    summary = {
        "household_fields": len(household),
        "status_fields": len(status),
        "members_added": len(added),
        "members_removed": len(removed),
        "members_changed": len(changed),
    }
    return {
        "household": household,
        "status": status,
        "members": {"added": added, "removed": removed, "changed": changed},
        "summary": summary,
        "is_empty": not any(summary.values()),
    }


def changed_member_fields(diff: Mapping) -> dict[int, set[str]]:
    """For each changed member line, the names of the fields that changed."""
    return {c["line_no"]: {f["field"] for f in c["changes"]} for c in diff["members"]["changed"]}


def _mask_value(field: str, value):
    if value is None:
        return None
    if field in _ID_FIELDS:
        return mask_identifier(str(value))
    return MASK


def mask_diff(diff: Mapping, can_see_pii: bool) -> dict:
    """The diff with personal data masked for viewers who may not see it. Masking happens after
    diffing, so a masked viewer still sees *that* a name changed, not what it says."""
    if can_see_pii:
        return dict(diff)

    def mask_changes(changes, pii_fields):
        return [
            {**c, "old": _mask_value(c["field"], c["old"]), "new": _mask_value(c["field"], c["new"])}
            if c["field"] in pii_fields
            else c
            for c in changes
        ]

    members = diff["members"]
    return {
        **diff,
        "household": mask_changes(diff["household"], PII_HOUSEHOLD_FIELDS),
        "members": {
            "added": [{**a, "member": mask_member(a["member"], False)} for a in members["added"]],
            "removed": [{**r, "member": mask_member(r["member"], False)} for r in members["removed"]],
            "changed": [{**c, "changes": mask_changes(c["changes"], PII_MEMBER_FIELDS)} for c in members["changed"]],
        },
    }


def side_by_side(old: Mapping | None, new: Mapping | None) -> dict:
    """Rows for a two-column view: every household field and every member line, with both values
    and whether they differ (the review page renders this)."""
    old_hh = dict((old or {}).get("household") or {})
    new_hh = dict((new or {}).get("household") or {})
    fields = list(new_hh) + [k for k in old_hh if k not in new_hh]
    household_rows = [
        {
            "field": f,
            "old": old_hh.get(f),
            "new": new_hh.get(f),
            "changed": not same_value(old_hh.get(f), new_hh.get(f)),
        }
        for f in fields
    ]
    for k in STATUS_KEYS:
        o, n = (old or {}).get(k), (new or {}).get(k)
        household_rows.append({"field": k, "old": o, "new": n, "changed": bool(old or new) and not same_value(o, n)})
    old_m, new_m = members_by_line(old), members_by_line(new)
    member_rows = []
    for line in sorted(old_m.keys() | new_m.keys()):
        o, n = old_m.get(line), new_m.get(line)
        if o is None:
            state = "added"
        elif n is None:
            state = "removed"
        else:
            state = "changed" if _field_changes(o, n, skip=("line_no",)) else "same"
        changed_fields = {c["field"] for c in _field_changes(o or {}, n or {}, skip=("line_no",))}
        member_rows.append({"line_no": line, "old": o, "new": n, "state": state, "changed_fields": changed_fields})
    return {"household": household_rows, "members": member_rows}
