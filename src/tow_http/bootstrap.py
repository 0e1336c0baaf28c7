"""Builds the use case objects from the ports the composition root made (and tests' fakes): the one place a
use case is wired. ``create_app`` registers each under its name, so a handler asks for the one it calls
(``docs: NamedDependency[DocUseCases]``) and for nothing else; the CLI and later front doors take them
from here too."""

from __future__ import annotations

from datetime import timedelta

from tow_core.use_cases.docs import DocUseCases
from tow_core.use_cases.exports import ExportUseCases, ImportUseCases
from tow_http.context import Services


def use_cases(services: Services) -> dict[str, object]:
    transactions = services.transactions
    return {
        "docs": DocUseCases(transactions),
        "exports": ExportUseCases(transactions, services.export_files,
                                  timedelta(hours=services.settings.exports.retention_hours)),
        "imports": ImportUseCases(transactions, services.upload_store, services.images),
    }
