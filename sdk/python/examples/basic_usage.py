"""Basic CodeGate SDK usage: project info, listing, lookup, redemption, statistics.

Run against a server with the four environment variables set:

    CODEGATE_BASE_URL=http://127.0.0.1:8080 CODEGATE_PROJECT_ID=... \\
    CODEGATE_API_KEY=... CODEGATE_SECRET=... uv run python examples/basic_usage.py
"""

from __future__ import annotations

from codegate_sdk import CodeGateClient


def main() -> None:
    with CodeGateClient.from_env() as client:
        project = client.get_project()
        stats = project["statistics"]
        print(f"Project {project['name']!r} ({project['id']}), enabled={project['status']}")
        print(f"  codes: {stats['total_codes']} total, {stats['unused_codes']} unused, "
              f"{stats['used_codes']} used")

        page = client.list_codes(page=1, page_size=5, status="unused")
        print(f"First {len(page['items'])} of {page['total']} unused codes "
              f"({page['total_pages']} pages):")
        for item in page["items"]:
            print(f"  {item['code']}  id={item['id']}")

        if not page["items"]:
            print("No unused code left to redeem; generate some first.")
            return

        code = page["items"][0]["code"]
        details = client.get_code_by_code(code)
        print(f"Looked up {code}: used={details['status']}, disabled={details['is_disabled']}")

        result = client.verify_code(code, verified_by="example-user-42")
        if result["success"]:
            print(f"Redeemed {result['code']} at {result['verified_at']}, "
                  f"metadata={result.get('metadata')}")
        else:
            print(f"Could not redeem {code}: {result['error_code']} ({result.get('message')})")

        again = client.verify_code(code, verified_by="example-user-42")
        print(f"Second attempt: success={again['success']}, error_code={again['error_code']}")

        undo = client.reactivate_code(code, reactivated_by="example-admin", reason="example refund")
        print(f"Reactivated: success={undo['success']}, error_code={undo.get('error_code')}")

        unused = sum(1 for _ in client.iter_codes(status="unused"))
        print(f"iter_codes counted {unused} unused codes")

        stats = client.get_statistics()
        print(f"Statistics: usage rate {stats['usage_rate']}, "
              f"{len(stats['recent_verifications'])} recent verifications")
        for entry in stats["recent_verifications"][:3]:
            print(f"  {entry['code']} by {entry['verified_by']} at {entry['verified_at']}")


if __name__ == "__main__":
    main()
