"""Accounts: sign-up, sign-in, sessions and the current user (SPEC §1, §3) — API and pages."""
