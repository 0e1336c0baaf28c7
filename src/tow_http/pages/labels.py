"""Human labels for record fields and their values on every page (issue 18: no ``assignee_id`` or
``current_company_state`` showing through). Field names stay the API's; only what a person reads changes."""

from __future__ import annotations

FIELD_LABELS = {
    "assignee_id": "assignee", "owner_id": "owner", "due_date": "due date", "ticket_type": "ticket type",
    "memory_type": "memory type", "snapshot_type": "snapshot type", "source_references": "sources",
    "superseded_by": "superseded by", "parent_id": "parent page", "proposed_by": "proposed by",
    "approved_by": "approved by", "memory_diff_id": "memory diff", "importance": "importance",
    "priority": "priority", "severity": "severity", "likelihood": "likelihood",
}


def field_label(name: object) -> str:
    """A field's name as a person reads it: ``assignee_id`` → "assignee"."""
    return FIELD_LABELS.get(str(name), str(name).replace("_", " "))


def value_label(value: object) -> str:
    """A choice's value as a person reads it: ``current_company_state`` → "Current company state"."""
    text = str(value).replace("_", " ")
    return text[:1].upper() + text[1:]
