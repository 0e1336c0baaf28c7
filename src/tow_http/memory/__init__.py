"""Memory diffs: proposed memory changes and their review (SPEC §4) — API and pages."""
