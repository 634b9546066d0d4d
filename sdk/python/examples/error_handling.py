"""Error handling with the CodeGate SDK.

HTTP errors raise typed subclasses of ``requests.HTTPError``; refused
redemptions come back as ``success: False`` with an ``error_code``.

    CODEGATE_BASE_URL=... CODEGATE_PROJECT_ID=... CODEGATE_API_KEY=... \\
    CODEGATE_SECRET=... uv run python examples/error_handling.py
"""

from __future__ import annotations

import uuid

from codegate_sdk import (
    AuthenticationError,
    CodeGateClient,
    CodeGateError,
    ConfigurationError,
    NotFoundError,
    RateLimitError,
    ValidationError,
)


def redeem(client: CodeGateClient, code: str, user: str) -> bool:
    """Redeem a code for a user the way a backend would, explaining refusals."""
    try:
        # A stable idempotency key makes our own retries (e.g. after a crash) safe:
        # the server answers a repeat with the first answer.
        result = client.verify_code(code, verified_by=user, idempotency_key=f"{user}:{code}")
    except RateLimitError as e:
        print(f"  rate limited, try again in {e.retry_after} s")
        return False
    except CodeGateError as e:
        print(f"  HTTP {e.status_code} {e.code}: {e.detail}")
        return False
    if result["success"]:
        print(f"  {code}: redeemed")
        return True
    reasons = {
        "CODE_NOT_FOUND": "no such code",
        "CODE_ALREADY_USED": "already redeemed",
        "CODE_DISABLED": "disabled by an admin",
        "CODE_EXPIRED": "expired",
        "PROJECT_DISABLED": "campaign switched off",
        "PROJECT_EXPIRED": "campaign over",
    }
    print(f"  {code}: refused, {reasons.get(result['error_code'], result['error_code'])}")
    return False


def main() -> None:
    try:
        client = CodeGateClient.from_env(max_retries=2, timeout=5.0)
    except ConfigurationError as e:
        raise SystemExit(f"configuration: {e}")

    print("1. Business outcomes are answers, not exceptions:")
    redeem(client, "NO-SUCH-" + uuid.uuid4().hex[:8].upper(), "user-1")

    print("2. Unknown code id -> NotFoundError:")
    try:
        client.get_code(uuid.uuid4().hex)
    except NotFoundError as e:
        print(f"  {e.status_code} {e.code}: {e.detail}")

    print("3. Invalid parameter -> ValidationError:")
    try:
        client.list_codes(page_size=500)
    except ValidationError as e:
        print(f"  {e.status_code} {e.code}: {e.detail}")

    print("4. Wrong secret -> AuthenticationError (still a requests.HTTPError):")
    wrong = CodeGateClient(client.api_key, "0" * 64, client.project_id, client.base_url)
    try:
        wrong.get_project()
    except AuthenticationError as e:
        print(f"  {e.status_code} {e.code}: {e.detail}")

    print("5. Redeeming the same code twice:")
    unused = client.list_codes(page_size=1, status="unused")["items"]
    if unused:
        code = unused[0]["code"]
        redeem(client, code, "user-2")
        redeem(client, code, "user-2")   # same key: the first answer again
        redeem(client, code, "user-3")   # another user: already redeemed
    else:
        print("  (no unused code in the project)")


if __name__ == "__main__":
    main()
