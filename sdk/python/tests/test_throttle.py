"""Rate-limit header parsing and the client-side throttle."""

from __future__ import annotations

from requests.structures import CaseInsensitiveDict

from codegate_sdk import RateLimitInfo, parse_rate_limit_headers
from codegate_sdk.ratelimit import Throttle, parse_structured_list
from conftest import FakeTime, scripted_client

NOW = 1_767_225_600.0


def headers(**values: str) -> CaseInsensitiveDict:
    return CaseInsensitiveDict({k.replace("_", "-"): v for k, v in values.items()})


class TestParsing:
    def test_structured_list(self) -> None:
        assert parse_structured_list('"reads";r=5;t=42') == [("reads", {"r": "5", "t": "42"})]
        assert parse_structured_list('"a";r=1;t=2, b;r=0;t=5') == [
            ("a", {"r": "1", "t": "2"}), ("b", {"r": "0", "t": "5"})]
        assert parse_structured_list('"we;ird, name";r=1') == [("we;ird, name", {"r": "1"})]
        assert parse_structured_list("") == []

    def test_draft_headers(self) -> None:
        h = headers(RateLimit_Policy='"redemption";q=1200;w=60', RateLimit='"redemption";r=1187;t=42')
        assert parse_rate_limit_headers(h) == [
            RateLimitInfo(policy="redemption", remaining=1187, reset=42.0, limit=1200, window=60.0)]

    def test_several_policies(self) -> None:
        h = headers(RateLimit='"redemption";r=10;t=3, "failed_redemptions";r=0;t=120')
        infos = parse_rate_limit_headers(h)
        assert [(i.policy, i.remaining, i.reset) for i in infos] == [
            ("redemption", 10, 3.0), ("failed_redemptions", 0, 120.0)]

    def test_draft_header_preferred_over_x_headers(self) -> None:
        h = headers(RateLimit='"reads";r=0;t=2', X_RateLimit_Remaining="9", X_RateLimit_Reset="9")
        assert parse_rate_limit_headers(h) == [RateLimitInfo("reads", 0, 2.0)]

    def test_x_headers_with_delta_reset(self) -> None:
        h = headers(X_RateLimit_Limit="3", X_RateLimit_Remaining="0", X_RateLimit_Reset="2")
        assert parse_rate_limit_headers(h, now=NOW) == [
            RateLimitInfo(policy=None, remaining=0, reset=2.0, limit=3)]

    def test_x_headers_with_epoch_reset(self) -> None:
        h = headers(X_RateLimit_Remaining="0", X_RateLimit_Reset=str(int(NOW) + 5))
        assert parse_rate_limit_headers(h, now=NOW)[0].reset == 5.0

    def test_x_headers_named_by_policy_header(self) -> None:
        h = headers(RateLimit_Policy='"reads";q=3;w=2', X_RateLimit_Remaining="1", X_RateLimit_Reset="1")
        assert parse_rate_limit_headers(h)[0] == RateLimitInfo("reads", 1, 1.0, None, 2.0)

    def test_no_headers(self) -> None:
        assert parse_rate_limit_headers(headers()) == []

    def test_garbage_is_ignored(self) -> None:
        info = parse_rate_limit_headers(headers(RateLimit='"reads";r=lots;t=soon'))[0]
        assert info.remaining is None and info.reset is None


class TestThrottle:
    def test_waits_until_reset_once_exhausted(self) -> None:
        fake = FakeTime(NOW)
        throttle = Throttle(clock=fake.clock)
        throttle.observe("get_project", headers(RateLimit='"reads";r=1;t=2'))
        assert throttle.delay("get_project") == 0.0
        throttle.observe("get_project", headers(RateLimit='"reads";r=0;t=2'))
        assert throttle.delay("get_project") == 2.0
        fake.now += 1.5
        assert throttle.delay("get_project") == 0.5
        fake.now += 1.0
        assert throttle.delay("get_project") == 0.0

    def test_routes_sharing_a_policy_wait_together(self) -> None:
        throttle = Throttle(clock=lambda: NOW)
        throttle.observe("list_codes", headers(RateLimit='"reads";r=5;t=1'))
        throttle.observe("get_project", headers(RateLimit='"reads";r=0;t=3'))
        assert throttle.delay("list_codes") == 3.0
        assert throttle.delay("verify_code") == 0.0

    def test_default_policy_for_unseen_route(self) -> None:
        throttle = Throttle(clock=lambda: NOW, default_policies={"get_code": ("reads",)})
        throttle.observe("get_project", headers(RateLimit='"reads";r=0;t=3'))
        assert throttle.delay("get_code") == 3.0

    def test_remaining_again_clears_wait(self) -> None:
        throttle = Throttle(clock=lambda: NOW)
        throttle.observe("a", headers(RateLimit='"reads";r=0;t=3'))
        throttle.observe("a", headers(RateLimit='"reads";r=2;t=3'))
        assert throttle.delay("a") == 0.0

    def test_unnamed_x_headers_apply_per_route(self) -> None:
        throttle = Throttle(clock=lambda: NOW)
        throttle.observe("a", headers(X_RateLimit_Remaining="0", X_RateLimit_Reset="4"))
        assert throttle.delay("a") == 4.0
        assert throttle.delay("b") == 0.0


def reads_reply(remaining: int, reset: int = 2) -> tuple:
    return (200, {"RateLimit-Policy": '"reads";q=3;w=2', "RateLimit": f'"reads";r={remaining};t={reset}',
                  "X-RateLimit-Limit": "3", "X-RateLimit-Remaining": str(remaining),
                  "X-RateLimit-Reset": str(reset)}, {"id": "p" * 32})


def test_client_throttle_sleeps_before_exhausted_policy() -> None:
    replies = [reads_reply(2), reads_reply(1), reads_reply(0), reads_reply(2)]
    client, adapter, fake = scripted_client(replies, throttle=True)
    for _ in range(3):
        client.get_project()
    assert fake.sleeps == []
    client.list_codes()  # another route of the same policy
    assert fake.sleeps == [2.0]
    assert len(adapter.requests) == 4


def test_client_without_throttle_never_sleeps() -> None:
    client, _, fake = scripted_client([reads_reply(0)], throttle=False)
    for _ in range(3):
        client.get_project()
    assert fake.sleeps == []


def test_throttle_does_not_delay_other_policies() -> None:
    verify = (200, {"RateLimit": '"redemption";r=100;t=60'}, {"success": True})
    client, _, fake = scripted_client([reads_reply(0), verify], throttle=True)
    client.get_project()
    client.verify_code("A")
    assert fake.sleeps == []


def test_unseen_route_uses_policy_name_learned_for_its_group() -> None:
    defaults = {"get_project": ("reads",), "list_codes": ("reads",)}
    throttle = Throttle(clock=lambda: NOW, default_policies=defaults)
    throttle.observe("get_project", headers(RateLimit='"read-api";r=0;t=3'))
    assert throttle.delay("list_codes") == 3.0
