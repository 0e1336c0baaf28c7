"""Builds the use case objects from the ports the composition root made (and tests' fakes): the one place a
use case is wired. ``create_app`` registers each under its name, so a handler asks for the one it calls
(``docs: NamedDependency[DocUseCases]``) and for nothing else; the CLI and later front doors take them
from here too."""

from __future__ import annotations

from datetime import timedelta

from tow_core.access import OrgRole
from tow_core.access_tokens import TokenPolicy
from tow_core.mail import MailComposer
from tow_core.oidc import OrganisationRule, SsoPolicy
from tow_core.use_cases.accounts import AccountUseCases
from tow_core.use_cases.administration import AdminPageUseCases, OrganisationUseCases, ProjectUseCases
from tow_core.use_cases.agent_runs import AgentRunUseCases
from tow_core.use_cases.ai import AiUseCases
from tow_core.use_cases.chat import ChatUseCases
from tow_core.use_cases.chat_pages import ChatPageUseCases
from tow_core.use_cases.conversations import ConversationUseCases
from tow_core.use_cases.docs import DocUseCases
from tow_core.use_cases.exports import ExportSnapshot, ExportUseCases, ImportUseCases
from tow_core.use_cases.extraction import ExtractionPolicy, MemoryExtractionUseCases
from tow_core.use_cases.inbox import InboxUseCases
from tow_core.use_cases.live import LiveUseCases
from tow_core.use_cases.memory import MemoryReviewUseCases
from tow_core.use_cases.notification_email import NotificationMailer
from tow_core.use_cases.notifications import NotificationUseCases
from tow_core.use_cases.operator import OperatorUseCases
from tow_core.use_cases.password_reset import PasswordResetUseCases
from tow_core.use_cases.record_pages import RecordPageUseCases
from tow_core.use_cases.records import RecordUseCases
from tow_core.use_cases.revision_pages import RevisionPageUseCases
from tow_core.use_cases.run_events import AgentRunEventUseCases
from tow_core.use_cases.single_sign_on import SingleSignOnUseCases
from tow_core.use_cases.snapshots import SnapshotUseCases
from tow_core.use_cases.tickets import TicketUseCases
from tow_core.use_cases.tokens import TokenUseCases
from tow_core.use_cases.uploads import UploadUseCases
from tow_http.config import AiSettings, Settings
from tow_http.context import PersonalAccessTokenSecrets, Services
from tow_http.email_templates import JinjaEmailTemplates


def sso_policy(settings: Settings) -> SsoPolicy | None:
    """``auth.oidc`` as the core's single sign-on policy; None unless ``auth.mode`` is oidc."""
    if settings.auth.mode != "oidc":
        return None
    oidc = settings.auth.oidc
    rules = tuple(OrganisationRule(rule.organisation, OrgRole(rule.role), rule.when_group)
                  for rule in oidc.organisations)
    first = oidc.first_organisation_name or (rules[0].organisation if rules else settings.runtime.app_name)
    mcp = settings.mcp
    return SsoPolicy(rules=rules, require_email_verified=oidc.require_email_verified,
                     link_existing_by_email=oidc.link_existing_by_email, first_organisation_name=first,
                     provider_logout=oidc.provider_logout_enabled, access_tokens=mcp.oidc_access_tokens,
                     access_audience=mcp.oidc_audience or oidc.client_id, write_scope=mcp.oidc_write_scope)


def use_cases(services: Services) -> dict[str, object]:
    transactions = services.transactions
    ai_configured = services.ai is not None and services.ai.status.configured
    extraction = extraction_policy(services.settings.ai, ai_configured)
    mail = mail_composer(services.settings)
    return {
        "docs": DocUseCases(transactions),
        "accounts": AccountUseCases(transactions, services.sign_in_log, services.password_hasher,
                                    services.cookie_signer, services.session_lifetime,
                                    single_sign_on=services.settings.auth.mode == "oidc"),
        "single_sign_on": SingleSignOnUseCases(transactions, services.identity_provider,
                                               sso_policy(services.settings), services.cookie_signer,
                                               services.session_lifetime),
        "memory": MemoryReviewUseCases(transactions),
        "ai": AiUseCases(transactions, *((services.ai.egress_ledger, services.ai.status) if services.ai else ())),
        "uploads": UploadUseCases(transactions, services.upload_store, services.images,
                                  services.settings.uploads.upload_max_bytes),
        "records": RecordUseCases(transactions, services.embedding_model, extraction),
        "tickets": TicketUseCases(transactions),
        "record_pages": RecordPageUseCases(transactions, services.upload_store, services.embedding_model, extraction),
        "extraction": MemoryExtractionUseCases(transactions, ai_configured, extraction),
        "revision_pages": RevisionPageUseCases(transactions),
        "organisations": OrganisationUseCases(transactions, services.cookie_signer, mail),
        "password_reset": PasswordResetUseCases(transactions, services.password_hasher, services.cookie_signer,
                                                mail,
                                                single_sign_on=services.settings.auth.mode == "oidc"),
        "projects": ProjectUseCases(transactions),
        "admin_pages": AdminPageUseCases(transactions, services.upload_store is not None, services.configuration,
                                         services.ai.status if services.ai else None),
        "exports": ExportUseCases(transactions, services.export_files,
                                  timedelta(hours=services.settings.exports.retention_hours)),
        "imports": ImportUseCases(transactions, services.upload_store, services.images),
        "agent_runs": AgentRunUseCases(transactions),
        "conversations": ConversationUseCases(transactions, ai_configured),
        "chat": ChatUseCases(transactions, ai_configured),
        "chat_pages": ChatPageUseCases(transactions, ai_configured),
        "tokens": TokenUseCases(transactions, PersonalAccessTokenSecrets(),
                                TokenPolicy.up_to(services.settings.auth.token_max_days)),
        "snapshots": SnapshotUseCases(transactions, ai_configured),
        "inbox": InboxUseCases(transactions),
        "notifications": NotificationUseCases(transactions),
        "notification_email": NotificationMailer(transactions, services.cookie_signer, mail),
        "run_events": AgentRunEventUseCases(transactions, ai_configured),
        "live": LiveUseCases(transactions, services.live),
    }


def mail_composer(settings: Settings) -> MailComposer:
    """Invite and password reset emails from ``templates/email``, with links into ``runtime.public_app_url``."""
    return MailComposer(JinjaEmailTemplates(), settings.runtime.public_app_url, settings.runtime.app_name)


def extraction_policy(ai: AiSettings, ai_configured: bool) -> ExtractionPolicy:
    """Memory extraction runs are queued only with AI configured (SPEC §6: saving still works); by saves and
    answers themselves unless ``ai.auto_extraction`` is off."""
    return ExtractionPolicy(ai_configured, timedelta(seconds=ai.extraction_debounce_seconds), ai.auto_extraction)


def operator_use_cases(services: Services, export_snapshot: ExportSnapshot | None = None) -> OperatorUseCases:
    """For `tow users ...`, `tow import` and `tow export` at the server's shell (not served over HTTP)."""
    return OperatorUseCases(services.transactions, services.password_hasher, services.upload_store, services.images,
                            export_snapshot)
