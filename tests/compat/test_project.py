"""get_project and get_statistics."""

import math
import time

from compat_helpers import (
    PROJECT_FIELDS, PROJECT_STAT_FIELDS, RECENT_FIELDS, STATISTICS_FIELDS,
    actor, assert_has_fields, assert_hex32, assert_recent_time, build_mixed_project,
    buyer_of, expected_counts, now,
)

EMPTY_COUNTS = dict.fromkeys(PROJECT_STAT_FIELDS, 0)


def test_get_project_returns_project_fields(make_project):
    expires_at = now() + 86_400
    project = make_project(description="a described project", expires_at=expires_at)

    info = project.client.get_project()

    assert_has_fields(info, PROJECT_FIELDS, "project")
    assert_hex32(info["id"], "project.id")
    assert info["id"] == project.id
    assert info["name"] == project.info["name"]
    assert info["description"] == "a described project"
    assert info["status"] is True
    assert info["expires_at"] == expires_at
    assert_recent_time(info["created_at"], "project.created_at")
    assert info["statistics"] == EMPTY_COUNTS


def test_get_project_without_expiry_has_null_expires_at(project):
    assert project.client.get_project()["expires_at"] is None


def test_get_project_statistics_count_each_state(project):
    states = build_mixed_project(project)

    stats = project.client.get_project()["statistics"]

    assert_has_fields(stats, PROJECT_STAT_FIELDS, "project.statistics")
    assert {k: stats[k] for k in PROJECT_STAT_FIELDS} == expected_counts(states)


def test_get_statistics_of_empty_project(project):
    stats = project.client.get_statistics()

    assert_has_fields(stats, STATISTICS_FIELDS, "statistics")
    assert stats["project_id"] == project.id
    assert {k: stats[k] for k in PROJECT_STAT_FIELDS} == EMPTY_COUNTS
    assert isinstance(stats["usage_rate"], float) and stats["usage_rate"] == 0.0, stats
    assert stats["recent_verifications"] == []


def test_get_statistics_counts_and_usage_rate(project):
    states = build_mixed_project(project)

    stats = project.client.get_statistics()

    assert_has_fields(stats, STATISTICS_FIELDS, "statistics")
    assert stats["project_id"] == project.id
    assert {k: stats[k] for k in PROJECT_STAT_FIELDS} == expected_counts(states)
    assert isinstance(stats["usage_rate"], float), stats
    assert math.isclose(stats["usage_rate"], 3 / 10), f"usage_rate should be used/total: {stats}"

    recent = stats["recent_verifications"]
    for entry in recent:
        assert_has_fields(entry, RECENT_FIELDS, "recent verification")
        assert_recent_time(entry["verified_at"], "recent.verified_at")
    assert {(e["code"], e["verified_by"]) for e in recent} == \
        {(code, buyer_of(code)) for code in states["used"]}


def test_recent_verifications_newest_first_and_at_most_ten(project):
    *earlier, latest = project.generate(12)
    verifiers = {code: actor("early") for code in earlier}
    for code in earlier:
        project.use(code, verified_by=verifiers[code])
    time.sleep(1.1)  # a later second, so "newest" is unambiguous for the last one
    verifiers[latest] = actor("latest")
    project.use(latest, verified_by=verifiers[latest])

    stats = project.client.get_statistics()
    recent = stats["recent_verifications"]

    assert stats["used_codes"] == 12 and stats["total_codes"] == 12
    assert math.isclose(stats["usage_rate"], 1.0)
    assert len(recent) == 10, f"expected the 10 newest verifications, got {len(recent)}"
    assert recent[0]["code"] == latest, f"newest verification should come first: {recent[:2]}"
    times = [entry["verified_at"] for entry in recent]
    assert times == sorted(times, reverse=True), f"not newest first: {times}"
    assert len({entry["code"] for entry in recent}) == 10
    for entry in recent:
        assert entry["verified_by"] == verifiers[entry["code"]], entry
