"""bot.delivery against the real FakeSlack over sockets: posting, pacing, 429s, lost responses,
permanent errors, reconciliation reads and response_url replies."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from bot.delivery import SlackDelivery
from bot.errors import AuthError, DeliveryError
from bot.models import Message
from tests.fakes.slack import FakeSlack, Fault

META = {"event_type": "paper_digest", "event_payload": {"run_id": 42, "item_key": "2606.06113"}}
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "<https://arxiv.org/abs/2606.06113|A title>"}}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def delivery(slack: FakeSlack) -> SlackDelivery:
    """Pacing off (tests that post twice to one channel stay fast); pacing tests build their own."""
    return SlackDelivery(slack.bot_token, base_url=slack.api_url, timeout=5, min_interval=0.0)


def msg(text: str = "3 new papers", *blocks: dict) -> Message:
    return Message(text=text, blocks=blocks or (SECTION,))


def test_post_with_metadata_is_found_in_history(slack: FakeSlack, delivery: SlackDelivery) -> None:
    ts = delivery.post("C1", msg(), metadata=META)
    stored = slack.messages("C1")
    assert [m["ts"] for m in stored] == [ts]
    assert stored[0]["metadata"] == META and stored[0]["blocks"][0]["text"] == SECTION["text"]
    assert (stored[0]["unfurl_links"], stored[0]["unfurl_media"]) == (False, False)
    assert (stored[0]["link_names"], stored[0]["parse"]) == (None, None)
    delivery.post("C1", msg("no metadata"))
    slack.post_as_user("C1", "a human")
    assert delivery.find_posted("C1", oldest=float(ts) - 60, event_type="paper_digest") == [
        {"ts": ts, "event_payload": META["event_payload"]}
    ]
    assert delivery.find_posted("C1", oldest=float(ts), event_type="paper_digest") == []  # oldest is exclusive
    assert delivery.find_posted("C1", oldest=0, event_type="other") == []


def test_threaded_replies_are_found_with_find_replies(slack: FakeSlack, delivery: SlackDelivery) -> None:
    parent = delivery.post("C1", msg("parent"), metadata={"event_type": "paper_digest_parent", "event_payload": {}})
    chunk = {"event_type": "paper_digest", "event_payload": {"chunk": 1}}
    reply = delivery.post("C1", msg("chunk 1"), thread_ts=parent, metadata=chunk)
    assert [m["ts"] for m in slack.replies("C1", parent)] == [reply]
    assert delivery.find_posted("C1", oldest=0, event_type="paper_digest") == []  # replies are not in history
    assert delivery.find_replies("C1", parent, "paper_digest") == [{"ts": reply, "event_payload": {"chunk": 1}}]


def test_find_posted_pages_through_history(slack: FakeSlack, delivery: SlackDelivery) -> None:
    for i in range(230):
        slack.workspace.add_message("C1", {"text": str(i), "metadata": {"event_type": "e", "event_payload": {"i": i}}})
    found = delivery.find_posted("C1", oldest=0, event_type="e")
    assert [f["event_payload"]["i"] for f in found] == list(range(230))
    assert len(slack.calls("conversations.history")) == 2


def test_429_waits_retry_after_then_posts_once(slack: FakeSlack, delivery: SlackDelivery) -> None:
    slack.add_fault("chat.postMessage", Fault.ratelimited(retry_after=1))
    ts = delivery.post("C1", msg())
    calls = slack.calls("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 1.0
    assert [m["ts"] for m in slack.messages("C1")] == [ts]


def test_429_without_retry_after_and_persistent_429(slack: FakeSlack) -> None:
    sleeps: list[float] = []
    d = SlackDelivery(slack.bot_token, base_url=slack.api_url, max_rate_limit_retries=2, sleep=sleeps.append)
    slack.add_fault("chat.postMessage", Fault.ratelimited(retry_after=None))
    d.post("C1", msg())
    assert len(sleeps) == 1 and 0.9 <= sleeps[0] <= 1.0  # 1 s default when Retry-After is absent
    slack.add_fault("chat.postMessage", Fault.ratelimited(retry_after=0), times=3)
    with pytest.raises(DeliveryError) as err:
        d.post("C2", msg())
    assert err.value.code == "ratelimited" and not err.value.ambiguous
    assert len(slack.calls("chat.postMessage")) == 2 + 3  # bounded: 1 try + 2 retries
    slack.add_fault("chat.postMessage", Fault.ratelimited(retry_after=3600))
    with pytest.raises(DeliveryError, match="rate-limited"):
        d.post("C3", msg())  # longer than max_retry_after: fail now, do not block for an hour
    assert len(slack.messages("C1")) == 1 and slack.messages("C2") == slack.messages("C3") == []


def test_posts_are_paced_per_channel(slack: FakeSlack) -> None:
    delivery = SlackDelivery(slack.bot_token, base_url=slack.api_url)  # default: 1 post/s/channel
    for text in ("a1", "b1", "a2", "b2"):
        delivery.post("CA" if text[0] == "a" else "CB", msg(text))
    calls = slack.calls("chat.postMessage")
    by_text = {c.params["text"]: c.at for c in calls}
    assert by_text["a2"] - by_text["a1"] >= 0.99 and by_text["b2"] - by_text["b1"] >= 0.99
    assert by_text["b1"] - by_text["a1"] < 0.9  # another channel does not wait for CA's slot


def test_pacing_reserves_slots_across_threads(slack: FakeSlack) -> None:
    lock, now, sleeps = threading.Lock(), [100.0], []

    def fake_sleep(seconds: float) -> None:
        with lock:
            sleeps.append(round(seconds, 6))

    d = SlackDelivery(slack.bot_token, base_url=slack.api_url, clock=lambda: now[0], sleep=fake_sleep)
    threads = [threading.Thread(target=d.post, args=("C1", msg(str(i)))) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(sleeps) == [1.0, 2.0, 3.0]  # four posts at the same instant get four 1 s slots
    assert len(slack.messages("C1")) == 4


def test_lost_response_is_ambiguous_and_not_retried(slack: FakeSlack, delivery: SlackDelivery) -> None:
    slack.add_fault("chat.postMessage", Fault.lost())
    with pytest.raises(DeliveryError) as err:
        delivery.post("C1", msg(), metadata=META)
    assert err.value.ambiguous and not err.value.permanent and err.value.code == "connection_lost"
    assert len(slack.calls("chat.postMessage")) == 1 and len(slack.messages("C1")) == 1
    found = delivery.find_posted("C1", oldest=0, event_type="paper_digest")
    assert [f["ts"] for f in found] == [slack.messages("C1")[0]["ts"]]  # reconciliation sees it


@pytest.mark.parametrize(
    ("fault", "code", "stored"),
    [
        (Fault.reset(), "connection_lost", 0),
        (Fault.http(500), "http_500", 0),
        (Fault.http(503), "http_503", 0),
        (Fault.slack_error("internal_error"), "internal_error", 0),
    ],
)
def test_failures_where_slack_may_have_posted_are_ambiguous(
    slack: FakeSlack, delivery: SlackDelivery, fault: Fault, code: str, stored: int
) -> None:
    slack.add_fault("chat.postMessage", fault)
    with pytest.raises(DeliveryError) as err:
        delivery.post("C1", msg())
    assert (err.value.code, err.value.ambiguous) == (code, True)
    assert len(slack.calls("chat.postMessage")) == 1 and len(slack.messages("C1")) == stored


def test_timeout_is_ambiguous(slack: FakeSlack) -> None:
    d = SlackDelivery(slack.bot_token, base_url=slack.api_url, timeout=1)
    slack.add_fault("chat.postMessage", Fault.delay(1.5))
    with pytest.raises(DeliveryError) as err:
        d.post("C1", msg())
    assert (err.value.code, err.value.ambiguous) == ("timeout", True)
    assert len(slack.calls("chat.postMessage")) == 1


def test_unreachable_slack_is_not_ambiguous(slack: FakeSlack) -> None:
    d = SlackDelivery(slack.bot_token, base_url=slack.api_url, timeout=2)
    slack.stop()
    with pytest.raises(DeliveryError) as err:
        d.post("C1", msg())
    assert (err.value.code, err.value.ambiguous) == ("connection_failed", False)


@pytest.mark.parametrize("code", ["not_in_channel", "channel_not_found", "is_archived"])
def test_channel_errors_are_permanent_and_not_retried(slack: FakeSlack, delivery: SlackDelivery, code: str) -> None:
    slack.set_channel_error("C2", code)
    with pytest.raises(DeliveryError) as err:
        delivery.post("C2", msg())
    assert (err.value.code, err.value.permanent, err.value.ambiguous) == (code, True, False)
    assert len(slack.calls("chat.postMessage")) == 1
    assert delivery.post("C1", msg())  # other channels unaffected


def test_invalid_blocks_error_names_the_problem(delivery: SlackDelivery) -> None:
    with pytest.raises(DeliveryError) as err:
        delivery.post("C1", Message(text="t", blocks=(SECTION,) * 51))
    assert err.value.code == "invalid_blocks" and err.value.permanent
    assert "no more than 50 items" in str(err.value)


def test_auth_errors(slack: FakeSlack) -> None:
    bad = SlackDelivery("xoxb-wrong", base_url=slack.api_url)
    with pytest.raises(AuthError) as err:
        bad.auth_test()
    assert err.value.code == "invalid_auth" and err.value.permanent
    good = SlackDelivery(slack.bot_token, base_url=slack.api_url)
    assert good.auth_test()["user_id"] == slack.bot_user_id
    slack.revoke(slack.bot_token, "account_inactive")
    with pytest.raises(AuthError, match="account_inactive"):
        good.post("C1", msg())


def test_reads_retry_transport_errors(slack: FakeSlack, delivery: SlackDelivery) -> None:
    delivery.post("C1", msg(), metadata=META)
    slack.add_fault("conversations.history", Fault.reset())
    assert len(delivery.find_posted("C1", oldest=0, event_type="paper_digest")) == 1
    assert [c.fault for c in slack.calls("conversations.history")] == ["reset", None]


def test_metadata_shape_is_checked(delivery: SlackDelivery) -> None:
    with pytest.raises(ValueError, match="event_type"):
        delivery.post("C1", msg(), metadata={"run_id": 1})


def test_ephemeral_and_update(slack: FakeSlack, delivery: SlackDelivery) -> None:
    assert delivery.post_ephemeral("C1", "U9", msg("only you"))
    assert [e["user"] for e in slack.ephemerals("C1")] == ["U9"] and slack.messages("C1") == []
    ts = delivery.post("C1", msg("v1"))
    assert delivery.update("C1", ts, Message(text="v2")) == ts
    assert slack.messages("C1")[0]["text"] == "v2" and slack.messages("C1")[0]["blocks"] == []
    with pytest.raises(DeliveryError) as err:
        delivery.update("C1", "1.000001", Message(text="x"))
    assert err.value.code == "message_not_found"


def test_respond_through_response_url(slack: FakeSlack, delivery: SlackDelivery) -> None:
    url = slack.new_response_url("C1", "U1")
    delivery.respond(url, msg("Top results"))
    delivery.respond(url, Message(text="replaced"), replace_original=True, response_type="in_channel")
    posts = slack.responses(url)
    assert posts[0] == {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": "Top results",
        "blocks": [SECTION],
    }
    assert posts[1]["replace_original"] is True and posts[1]["response_type"] == "in_channel"
    for _ in range(3):
        delivery.respond(url, Message(text="more"))
    with pytest.raises(DeliveryError) as err:
        delivery.respond(url, Message(text="sixth"))
    assert err.value.code == "used_url" and not err.value.ambiguous
    with pytest.raises(DeliveryError, match="HTTP 404"):
        delivery.respond(f"{slack.base_url}/nowhere", Message(text="x"))
