"""FakeSlack speaks the real wire formats: checked with slack_sdk's WebClient, raw HTTP, the
``websockets`` client and slack_sdk's built-in SocketModeClient (the one Bolt uses)."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from websockets.sync.client import connect as ws_connect

from tests.fakes.slack import FakeSlack, Fault


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def web(slack: FakeSlack) -> WebClient:
    return WebClient(token=slack.bot_token, base_url=slack.api_url, retry_handlers=[])


def _error(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(SlackApiError) as info:
        call()
    return str(info.value.response["error"])


def _raw(slack: FakeSlack, method: str, body: bytes = b"", *, verb: str = "POST", token: str = "") -> tuple:
    conn = http.client.HTTPConnection("127.0.0.1", slack.port, timeout=5)
    headers = {"Authorization": f"Bearer {token or slack.bot_token}"}
    if body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(verb, f"/api/{method}", body=body or None, headers=headers)
    resp = conn.getresponse()
    return resp.status, dict(resp.getheaders()), resp.read()


# ---- Web API ------------------------------------------------------------------------------------


def test_auth_test_and_token_errors(slack: FakeSlack, web: WebClient) -> None:
    data = web.auth_test().data
    assert isinstance(data, dict)
    assert (data["user_id"], data["bot_id"], data["team_id"]) == (slack.bot_user_id, slack.bot_id, "T111")
    assert _error(WebClient(token="xoxb-wrong", base_url=slack.api_url).auth_test) == "invalid_auth"
    assert _error(WebClient(base_url=slack.api_url).auth_test) == "not_authed"
    assert _error(lambda: web.apps_connections_open(app_token=slack.bot_token)) == "not_allowed_token_type"
    slack.revoke(slack.bot_token)
    assert _error(web.auth_test) == "token_revoked"


def test_apps_connections_open_needs_post_and_app_token(slack: FakeSlack, web: WebClient) -> None:
    url = web.apps_connections_open(app_token=slack.app_token)["url"]
    assert url.startswith(f"ws://127.0.0.1:{slack.port}/link/?ticket=") and url.endswith("&app_id=A111")
    status, _, body = _raw(slack, "apps.connections.open", verb="GET", token=slack.app_token)
    assert status == 200 and json.loads(body) == {"ok": False, "error": "insecure_request"}
    assert _error(lambda: web.apps_connections_open(app_token="xapp-bad")) == "invalid_auth"


def test_post_message_json_and_form_bodies_are_stored(slack: FakeSlack, web: WebClient) -> None:
    ts1 = web.chat_postMessage(channel="C1", text="json body", unfurl_links=False, unfurl_media=False)["ts"]
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "form"}}]
    ts2 = web.api_call(
        "chat.postMessage",
        data={"channel": "C1", "text": "form body", "blocks": json.dumps(blocks), "unfurl_links": "false"},
    )["ts"]
    assert float(ts2) > float(ts1) and len(ts1.split(".")[1]) == 6
    msgs = slack.messages("C1")
    assert [m["text"] for m in msgs] == ["json body", "form body"]
    assert msgs[0]["unfurl_links"] is False and msgs[0]["unfurl_media"] is False
    assert msgs[1]["blocks"][0]["text"]["text"] == "form" and msgs[1]["blocks"][0]["block_id"]
    assert msgs[1]["unfurl_links"] is False and msgs[1]["unfurl_media"] is None
    assert [c.params["text"] for c in slack.calls("chat.postMessage")] == ["json body", "form body"]


def test_post_message_enforces_slack_limits(slack: FakeSlack, web: WebClient) -> None:
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x"}}
    with pytest.raises(SlackApiError) as too_many:
        web.chat_postMessage(channel="C1", text="t", blocks=[section] * 51)
    assert too_many.value.response["errors"] == ["no more than 50 items allowed [json-pointer:/blocks]"]
    long_section = {"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}}
    with pytest.raises(SlackApiError) as too_long:
        web.chat_postMessage(channel="C1", text="t", blocks=[long_section])
    assert too_long.value.response["error"] == "invalid_blocks"
    assert "must be less than 3001 characters [json-pointer:/blocks/0/text/text]" in too_long.value.response["errors"]
    with pytest.warns(UserWarning, match="text"):  # slack_sdk warns before sending
        assert _error(lambda: web.chat_postMessage(channel="C1", text="")) == "no_text"
    big = [{"type": "section", "text": {"type": "mrkdwn", "text": "z" * 2900}}] * 5
    assert _error(lambda: web.chat_postMessage(channel="C1", text="t", blocks=big)) == "msg_blocks_too_long"
    assert slack.messages("C1") == []
    web.chat_postMessage(channel="C1", text="ok", blocks=[section] * 50)
    assert len(slack.messages("C1")) == 1


def test_per_channel_errors_and_unknown_method(slack: FakeSlack, web: WebClient) -> None:
    for channel, code in [("C2", "not_in_channel"), ("C3", "channel_not_found"), ("C4", "is_archived")]:
        slack.set_channel_error(channel, code)
        assert _error(lambda ch=channel: web.chat_postMessage(channel=ch, text="x")) == code
    web.chat_postMessage(channel="C1", text="fine")
    assert [len(slack.messages(c)) for c in ("C1", "C2", "C3", "C4")] == [1, 0, 0, 0]
    status, _, body = _raw(slack, "no.such.method")
    assert status == 200 and json.loads(body)["error"] == "unknown_method"


def test_history_shows_parents_newest_first_with_metadata_on_request(slack: FakeSlack, web: WebClient) -> None:
    meta = {"event_type": "paper_digest", "event_payload": {"run_id": 7, "item_key": "a"}}
    parent = web.chat_postMessage(channel="C1", text="parent", metadata=meta)["ts"]
    web.chat_postMessage(channel="C1", text="reply", thread_ts=parent)
    later = web.chat_postMessage(channel="C1", text="later")["ts"]
    hist = web.conversations_history(channel="C1")["messages"]
    assert [m["text"] for m in hist] == ["later", "parent"]
    assert all("metadata" not in m for m in hist)
    assert hist[1]["reply_count"] == 1 and hist[1]["thread_ts"] == parent
    with_meta = web.conversations_history(channel="C1", include_all_metadata=True)["messages"]
    assert with_meta[1]["metadata"] == meta and "metadata" not in with_meta[0]
    assert [m["ts"] for m in web.conversations_history(channel="C1", oldest=parent)["messages"]] == [later]
    first = web.conversations_history(channel="C1", limit=1)
    assert first["has_more"] is True and [m["text"] for m in first["messages"]] == ["later"]
    cursor = first["response_metadata"]["next_cursor"]
    second = web.conversations_history(channel="C1", limit=1, cursor=cursor)
    assert [m["text"] for m in second["messages"]] == ["parent"] and second["has_more"] is False
    replies = web.conversations_replies(channel="C1", ts=parent)["messages"]
    assert [m["text"] for m in replies] == ["parent", "reply"]
    assert [m["text"] for m in slack.replies("C1", parent)] == ["reply"]
    assert [m["text"] for m in slack.messages("C1")] == ["parent", "reply", "later"]


def test_update_ephemeral_and_info(slack: FakeSlack, web: WebClient) -> None:
    ts = web.chat_postMessage(channel="C1", text="v1")["ts"]
    web.chat_update(channel="C1", ts=ts, text="v2")
    assert slack.messages("C1")[0]["text"] == "v2" and slack.messages("C1")[0]["edited"]
    assert _error(lambda: web.chat_update(channel="C1", ts="1.000001", text="x")) == "message_not_found"
    assert web.chat_postEphemeral(channel="C1", user="U9", text="psst")["message_ts"]
    assert [e["text"] for e in slack.ephemerals("C1")] == ["psst"] and len(slack.messages("C1")) == 1
    slack.add_channel("C5", "papers")
    assert web.conversations_info(channel="C5")["channel"]["name"] == "papers"
    slack.set_channel_error("C6", "channel_not_found")
    assert _error(lambda: web.conversations_info(channel="C6")) == "channel_not_found"


def test_mentions_detector(slack: FakeSlack, web: WebClient) -> None:
    web.chat_postMessage(channel="C1", text="&lt;!channel&gt; is escaped")
    assert slack.mentions("C1") == []
    web.chat_postMessage(channel="C1", text="raw <!here>")
    web.chat_postMessage(channel="C1", text="bare @channel", link_names=True)
    assert slack.mentions("C1") == ["<!here", "@channel"]


# ---- faults ---------------------------------------------------------------------------------------


def test_ratelimited_fault_is_exactly_slacks_429(slack: FakeSlack) -> None:
    slack.add_fault("chat.postMessage", Fault.ratelimited(retry_after=3))
    status, headers, body = _raw(slack, "chat.postMessage", b"channel=C1&text=hi")
    assert status == 429 and headers["Retry-After"] == "3"
    assert body == b'{"ok":false,"error":"ratelimited"}' and len(body) == 34
    assert slack.messages("C1") == []
    assert _raw(slack, "chat.postMessage", b"channel=C1&text=hi")[0] == 200  # queue drained
    assert [c.status for c in slack.calls("chat.postMessage")] == [429, 200]


def test_server_error_reset_lost_and_delay_faults(slack: FakeSlack, web: WebClient) -> None:
    slack.add_fault("chat.postMessage", Fault.http(500))
    with pytest.raises(SlackApiError) as err:
        web.chat_postMessage(channel="C1", text="a")
    assert err.value.response.status_code == 500
    slack.add_fault("chat.postMessage", Fault.reset())
    with pytest.raises(ConnectionResetError):
        web.chat_postMessage(channel="C1", text="b")
    slack.add_fault("chat.postMessage", Fault.lost())
    with pytest.raises(http.client.RemoteDisconnected):
        web.chat_postMessage(channel="C1", text="c")
    assert [m["text"] for m in slack.messages("C1")] == ["c"]  # accepted although the answer was lost
    slack.add_fault("chat.postMessage", Fault.slack_error("internal_error"))
    assert _error(lambda: web.chat_postMessage(channel="C1", text="d")) == "internal_error"
    slack.add_fault("auth.test", Fault.delay(0.3))
    web.auth_test()
    calls = slack.calls("chat.postMessage")
    assert [(c.fault, c.answered) for c in calls] == [
        ("http", True),
        ("reset", False),
        ("lost", False),
        ("error", True),
    ]
    assert slack.calls("auth.test")[0].fault == "delay"


def test_every_nth_fault(slack: FakeSlack, web: WebClient) -> None:
    slack.every_nth("chat.postMessage", 3, Fault.slack_error("fatal_error"))
    outcomes = []
    for i in range(6):
        try:
            web.chat_postMessage(channel="C1", text=str(i))
            outcomes.append("ok")
        except SlackApiError as exc:
            outcomes.append(exc.response["error"])
    assert outcomes == ["ok", "ok", "fatal_error", "ok", "ok", "fatal_error"]


def test_response_url_accepts_five_posts(slack: FakeSlack) -> None:
    url = slack.new_response_url("C7", "U7")
    answers = []
    for i in range(6):
        req = urllib.request.Request(
            url, data=json.dumps({"text": f"r{i}"}).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                answers.append((resp.status, resp.read()))
        except urllib.error.HTTPError as exc:
            answers.append((exc.code, exc.read()))
    assert answers[:5] == [(200, b"ok")] * 5 and answers[5][0] == 404
    assert [p["text"] for p in slack.responses(url)] == ["r0", "r1", "r2", "r3", "r4"]


# ---- Socket Mode -----------------------------------------------------------------------------------


BLOCK_ACTIONS_FIXTURE = "reconstructed_envelope_interactive_block_actions_message_button.json"


def _keys(frame: dict) -> tuple:
    return tuple(frame), tuple(frame["payload"])


def test_websocket_hello_envelope_shapes_and_pongs(slack: FakeSlack, web: WebClient, fixtures_dir: Path) -> None:
    sm = fixtures_dir / "slack_socket_mode"
    url = web.apps_connections_open(app_token=slack.app_token)["url"]
    with ws_connect(url, open_timeout=5) as ws:
        hello = json.loads(ws.recv(timeout=5))
        assert hello["type"] == "hello" and hello["connection_info"] == {"app_id": "A111"}
        assert set(hello) == set(json.loads((sm / "hello.json").read_text()))
        cases = [
            (slack.send_slash_command("/papers", "bm25"), "envelope_slash_commands.json"),
            (slack.send_app_mention("hi", channel="C1"), "envelope_events_api_app_mention.json"),
            (
                slack.send_block_action("more", "2"),
                "reconstructed_envelope_interactive_block_actions_message_button.json",
            ),
        ]
        for envelope_id, fixture in cases:
            frame = json.loads(ws.recv(timeout=5))
            assert frame["envelope_id"] == envelope_id
            assert _keys(frame) == _keys(json.loads((sm / fixture).read_text()))
        assert frame["payload"]["response_url"].startswith(f"{slack.base_url}/response/")
        ws.send(json.dumps({"envelope_id": envelope_id}))
        assert slack.wait_ack(envelope_id, 5) == {"envelope_id": envelope_id}
        assert slack.envelope(envelope_id).ack_latency is not None
        assert ws.ping(b"p1").wait(5)
        slack.set_pong(False)
        assert not ws.ping(b"p2").wait(0.5)
        slack.set_pong(True)
        slack.go_silent()
        assert not ws.ping(b"p3").wait(0.5)
        assert slack.connection_count == 1  # half-open: TCP still up
        with pytest.raises(TimeoutError):
            slack.send_slash_command("/papers", "lost", timeout=0.2)


def test_events_spread_across_connections(slack: FakeSlack, web: WebClient) -> None:
    urls = [web.apps_connections_open(app_token=slack.app_token)["url"] for _ in range(2)]
    with ws_connect(urls[0]) as a, ws_connect(urls[1]) as b:
        assert json.loads(a.recv(timeout=5))["num_connections"] == 1
        assert json.loads(b.recv(timeout=5))["num_connections"] == 2
        ids = [slack.send_event({"type": "message", "text": str(i), "channel": "C1"}) for i in range(4)]
        got = [json.loads(ws.recv(timeout=5))["envelope_id"] for ws in (a, b, a, b)]
        assert sorted(got) == sorted(ids)
        again = slack.redeliver(ids[0])
        frame = slack.envelope(again).frame
        assert frame["retry_attempt"] == 1 and frame["retry_reason"] == "timeout"
        assert frame["payload"]["event_id"] == slack.envelope(ids[0]).frame["payload"]["event_id"]


def test_builtin_socket_mode_client_round_trip_and_refresh(slack: FakeSlack) -> None:
    frames: list[dict] = []
    arrived = threading.Condition()

    def on_message(raw: str) -> None:
        with arrived:
            frames.append(json.loads(raw))
            arrived.notify_all()

    def wait_for(pred, timeout: float = 8.0) -> None:  # type: ignore[no-untyped-def]
        with arrived:
            assert arrived.wait_for(lambda: pred([f.get("type") for f in frames]), timeout), frames

    def on_request(client: SocketModeClient, req: SocketModeRequest) -> None:
        client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id, payload={"text": "ok!"}))

    client = SocketModeClient(
        app_token=slack.app_token,
        web_client=WebClient(base_url=slack.api_url),
        on_message_listeners=[on_message],
    )
    client.socket_mode_request_listeners.append(on_request)
    try:
        client.connect()
        wait_for(lambda types: types == ["hello"])
        envelope_id = slack.send_slash_command("/papers", "diffusion", "C1", "U1")
        assert slack.wait_ack(envelope_id, 5) == {"envelope_id": envelope_id, "payload": {"text": "ok!"}}
        assert frames[1]["payload"]["text"] == "diffusion"
        t0 = time.monotonic()
        assert slack.disconnect("refresh_requested") == 1
        slack.wait_connects(2, 5)
        wait_for(lambda types: types.count("hello") == 2)
        assert len(slack.calls("apps.connections.open")) == 2
        assert slack.connections[1].connected_at > t0
        second = slack.send_slash_command("/papers", "after refresh")
        assert slack.envelope(second).connection_id == slack.connections[1].id
        assert slack.wait_ack(second, 5)["envelope_id"] == second
        slack.wait_open_count(1, 8)  # the client closed the old socket itself
        assert slack.connections[0].closed_by == "client" and slack.connections[1].is_open
    finally:
        client.close()


def test_builtin_client_detects_a_half_open_socket_and_reconnects(slack: FakeSlack) -> None:
    client = SocketModeClient(app_token=slack.app_token, web_client=WebClient(base_url=slack.api_url), ping_interval=1)
    try:
        client.connect()
        slack.wait_connects(1, 5)
        slack.go_silent()  # no pongs, no envelopes; the TCP connection stays open
        assert slack.connection_count == 1
        fresh = slack.wait_connects(2, 20)  # the SDK's stale-ping check (4 × ping_interval) fires
        envelope_id = slack.send_slash_command("/papers", "after the outage")
        assert slack.envelope(envelope_id).connection_id == fresh.id
    finally:
        client.close()
