"""AI status and the data-egress ledger (SPEC §6) — API and pages."""
