"""Core exception hierarchy. tow_http maps each class to one HTTP status in one table.

Adapters wrap vendor errors in these (``raise ... from exc``) so that nothing above the adapter
boundary ever sees a SQLAlchemy, psycopg or SDK exception.
"""

from __future__ import annotations


class TowError(Exception):
    """Base of every error the core or an adapter raises on purpose; ``code`` is stable API."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(TowError):
    """The request named a bad value; ``field`` says which one."""

    code = "invalid_input"


class MalformedInput(InvalidInput):
    """The request could not be read as input at all — nested too deep, a NUL character in text — as opposed
    to a readable value the rules refuse; ``field`` says where."""


class NoSearchTerms(InvalidInput):
    """A search of only stop words or punctuation: nothing to match. Search answers an empty result with a
    hint (``tow_core.semantic_search``) rather than refusing the request."""

    def __init__(self) -> None:
        super().__init__("search needs at least one word that is not a stop word like 'the' or 'and'", field="q")


class NotAuthenticated(TowError):
    code = "not_authenticated"


class InvalidToken(NotAuthenticated):
    """A bearer token that is malformed, unknown, expired or revoked (RFC 6750 §3.1 ``invalid_token``)."""

    code = "invalid_token"


class AccessDenied(TowError):
    """Signed in, allowed to know the target exists, but not allowed to do this."""

    code = "forbidden"


class TokenReadOnly(AccessDenied):
    """A read-only personal access token asked to change something."""

    code = "token_read_only"


class NotFound(TowError):
    """Absent, or present but invisible to the caller (SPEC §2: never reveal existence)."""

    code = "not_found"


class Conflict(TowError):
    code = "conflict"


class PayloadTooLarge(TowError):
    code = "payload_too_large"


class RetryableError(TowError):
    """An error the caller may retry after ``retry_after_seconds``."""

    def __init__(self, message: str, *, retry_after_seconds: int, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after_seconds = retry_after_seconds


class Throttled(RetryableError):
    code = "throttled"


class DependencyUnavailable(RetryableError):
    """A service TOW needs (the database, a provider) cannot answer now."""

    code = "dependency_unavailable"


class DatabaseUnavailable(DependencyUnavailable):
    """PostgreSQL cannot be reached, dropped the connection or cancelled the statement (it is restarting, or
    gone for a while): nothing of the transaction was kept, and the same work may simply be done again once it
    answers. Workers tell it apart from a provider being unavailable, which is the work's own outcome."""


class DatabaseBusy(DatabaseUnavailable):
    """Every pooled database connection stayed in use for the configured wait
    (``database.pool_timeout_seconds``): answered at once so that clients retry, instead of queueing."""

    code = "database_busy"


class NotConfigured(TowError):
    """A feature needs configuration the operator has not given (e.g. OPENAI_API_KEY)."""

    code = "not_configured"


class SchemaOutOfDate(TowError):
    """The database is reachable but not at the latest migration."""

    code = "schema_out_of_date"


class AiNotConfigured(NotConfigured):
    """OPENAI_API_KEY is unset: AI-only actions are refused, everything else keeps working (SPEC §6)."""

    code = "ai_not_configured"


class WebSearchNotConfigured(NotConfigured):
    """EXA_API_KEY is unset; the tool layer passes this message on to the model and the user."""

    code = "web_search_not_configured"


class ProviderNotApproved(NotConfigured):
    """The configured provider or base URL is not in ``ai.approved_providers``: no data was sent."""

    code = "provider_not_approved"


class ProviderStateRefused(TowError):
    """A request would have asked an AI provider to keep state between calls (``store`` other than false,
    ``previous_response_id``, a conversation, or an ``extra_*`` parameter naming one of them): refused before
    anything is sent, because nothing TOW sends may be kept at the provider (SPEC §6). A programming error,
    never a user's: ``field`` names the parameter."""

    code = "provider_state_refused"
