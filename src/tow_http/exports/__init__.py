"""Exports and organisation import (SPEC §5) — API and pages."""
