"""Administration: organisations, members, invites, groups, projects, grants, access explanation and
review, audit log (SPEC §1, §2) — API and pages."""
