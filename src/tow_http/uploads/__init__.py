"""Uploads, attachments, profile images and logos (SPEC §5) — API and pages."""
