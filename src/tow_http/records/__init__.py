"""Knowledge records: memory items, docs, tickets, decisions, risks, snapshots; search and references
(SPEC §4, §7) — API and pages."""
