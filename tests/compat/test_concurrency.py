"""Verify is exactly-once under concurrent redemption of the same code."""

import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

THREADS = 40
CODES = 20


def test_concurrent_verify_succeeds_exactly_once_per_code(project):
    codes = project.generate(CODES)
    barrier = threading.Barrier(THREADS)

    def worker(index: int) -> list[tuple[str, object]]:
        client = project.new_client()  # its own session and connection pool
        verifier = f"worker-{index}"   # distinct bodies: no two requests share a signature
        outcomes = []
        for code in codes:
            barrier.wait(timeout=60)   # all threads fire at the same code together
            try:
                outcomes.append((code, client.verify_code(code, verified_by=verifier)))
            except Exception as exc:   # recorded, so the other threads are not left waiting
                outcomes.append((code, exc))
        return outcomes

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        per_thread = list(pool.map(worker, range(THREADS)))

    answers = defaultdict(list)
    for outcomes in per_thread:
        for code, answer in outcomes:
            answers[code].append(answer)

    for code in codes:
        results = answers[code]
        assert len(results) == THREADS
        errors = [r for r in results if not isinstance(r, dict)]
        assert not errors, f"{code}: requests raised {errors[:3]}"
        winners = [r for r in results if r.get("success") is True]
        assert len(winners) == 1, f"{code}: {len(winners)} successful verifies, expected exactly 1"
        refused = {r.get("error_code") for r in results if r.get("success") is not True}
        assert refused == {"CODE_ALREADY_USED"}, f"{code}: losers answered {refused}"
        winner = winners[0]
        detail = project.client.get_code(winner["code_id"])
        assert detail["status"] is True
        assert detail["verified_at"] == winner["verified_at"]
        successes = [log for log in detail["verification_logs"] if log["result"] == "success"]
        assert len(successes) == 1, f"{code}: {len(successes)} success log rows"
        assert detail["verified_by"] == successes[0]["verified_by"]

    stats = project.client.get_statistics()
    assert (stats["used_codes"], stats["unused_codes"]) == (CODES, 0)
