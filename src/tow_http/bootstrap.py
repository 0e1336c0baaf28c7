"""Builds the use case objects from the ports the composition root made (and tests' fakes): the one place a
use case is wired. ``create_app`` registers each under its name, so a handler asks for the one it calls
(``docs: NamedDependency[DocUseCases]``) and for nothing else; the CLI and later front doors take them
from here too."""

from __future__ import annotations

from tow_core.use_cases.docs import DocUseCases
from tow_core.use_cases.record_pages import RecordPageUseCases
from tow_core.use_cases.records import RecordUseCases
from tow_core.use_cases.tickets import TicketUseCases
from tow_http.context import Services


def use_cases(services: Services) -> dict[str, object]:
    transactions = services.transactions
    return {
        "docs": DocUseCases(transactions),
        "records": RecordUseCases(transactions, services.embedding_model),
        "tickets": TicketUseCases(transactions),
        "record_pages": RecordPageUseCases(transactions, services.upload_store, services.embedding_model),
    }
