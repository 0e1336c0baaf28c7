"""Builds the use case objects from the ports the composition root made (and tests' fakes): the one place a
use case is wired. ``create_app`` registers each under its name, so a handler asks for the one it calls
(``docs: NamedDependency[DocUseCases]``) and for nothing else; the CLI and later front doors take them
from here too."""

from __future__ import annotations

from tow_core.use_cases.administration import AdminPageUseCases, OrganisationUseCases, ProjectUseCases
from tow_core.use_cases.docs import DocUseCases
from tow_http.context import Services


def use_cases(services: Services) -> dict[str, object]:
    transactions = services.transactions
    return {
        "docs": DocUseCases(transactions),
        "organisations": OrganisationUseCases(transactions, services.cookie_signer),
        "projects": ProjectUseCases(transactions),
        "admin_pages": AdminPageUseCases(transactions, services.upload_store is not None, services.configuration,
                                         services.ai.status if services.ai else None),
    }
