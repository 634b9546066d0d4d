"""CodeGate Python SDK.

A small client for the CodeGate API: look up codes, verify (redeem) them
exactly once, reactivate them, and read project statistics, with signed
requests, typed errors, retries and optional client-side throttling.

Quick start::

    from codegate_sdk import CodeGateClient

    client = CodeGateClient.from_env()   # CODEGATE_API_KEY, _SECRET, _PROJECT_ID, _BASE_URL
    result = client.verify_code("ABCD-EFGH-JKLM", verified_by="user-42")
    print(result["success"], result.get("error_code"))
"""

__version__ = "0.2.0"

from .client import DEFAULT_USER_AGENT, CodeGateClient  # noqa: E402
from .errors import (  # noqa: E402
    AuthenticationError,
    CodeGateError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    ValidationError,
    parse_retry_after,
)
from .ratelimit import RateLimitInfo, parse_rate_limit_headers  # noqa: E402
from .signature import EMPTY_STRING_HASH, canonical_query, generate_signature  # noqa: E402

__all__ = [
    "__version__",
    "CodeGateClient",
    "DEFAULT_USER_AGENT",
    "generate_signature",
    "canonical_query",
    "EMPTY_STRING_HASH",
    "CodeGateError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "ValidationError",
    "QuotaExceededError",
    "RateLimitError",
    "ServerError",
    "ConfigurationError",
    "parse_retry_after",
    "RateLimitInfo",
    "parse_rate_limit_headers",
]
