"""From template and inputs to the request: placeholders filled as flytekit fills them, secrets on top."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from core_connectors import SecretNotFound
from core_connectors.literals import literal_type_for, python_to_literal_map
from core_connectors_webhook import WebhookTask
from core_connectors_webhook.request import TemplateError, input_values, webhook_request

UTC = dt.timezone.utc


def build(inputs=None, types=None, secret=None, **task_args):
    task_args.setdefault("url", "http://127.0.0.1/hook")
    template = WebhookTask(name="t", **task_args).task_template()
    literal_map = python_to_literal_map(inputs or {}, {k: literal_type_for(t) for k, t in (types or {}).items()})
    secrets = secret or {}
    return webhook_request(template, literal_map, secret=lambda name: secrets[name])


def test_a_whole_placeholder_keeps_the_type_an_embedded_one_becomes_text():
    request = build(
        {"n": 7, "f": 1.5, "ok": True, "s": "x", "none": None},
        {"n": int, "f": float, "ok": bool, "s": str, "none": type(None)},
        data={
            "n": "{inputs.n}",
            "f": "{inputs.f}",
            "ok": "{inputs.ok}",
            "none": "{inputs.none}",
            "text": "n={inputs.n} f={inputs.f} ok={inputs.ok} none={inputs.none} s={inputs.s}",
            "nested": {"list": ["{inputs.s}", 3]},
            "{inputs.s}": "keys stay as written",
            "braces": "{not_a_placeholder} {}",
        },
    )
    assert request.data == {
        "n": 7,
        "f": 1.5,
        "ok": True,
        "none": None,
        "text": "n=7 f=1.5 ok=True none=None s=x",
        "nested": {"list": ["x", 3]},
        "{inputs.s}": "keys stay as written",
        "braces": "{not_a_placeholder} {}",
    }


def test_inputs_are_shown_as_flytekit_shows_them():
    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    values = {
        "when": dt.datetime(2024, 3, 4, 5, 6, 7, 890000, tzinfo=UTC),
        "wait": dt.timedelta(minutes=1, seconds=30),
        "cfg": {"a": 1, "b": [True]},
        "point": Point(1, 2),
        "items": [1, 2],
        "names": {"k": "v"},
        "maybe": 5,
    }
    types = {
        "when": dt.datetime,
        "wait": dt.timedelta,
        "cfg": dict,
        "point": Point,
        "items": list[int],
        "names": dict[str, str],
        "maybe": int | None,
    }
    shown = input_values(python_to_literal_map(values, {k: literal_type_for(t) for k, t in types.items()}))
    assert shown == {
        "when": "2024-03-04T05:06:07.890000+00:00",
        "wait": 90.0,
        "cfg": '{"a": 1, "b": [true]}',  # msgpack dicts and dataclasses: JSON text, as flytekit
        "point": '{"x": 1, "y": 2}',
        "items": [1, 2],
        "names": {"k": "v"},
        "maybe": 5,
    }


def test_a_dict_input_holding_bytes_fails_only_where_a_placeholder_uses_it():
    inputs, types = {"blob": {"raw": b"\x00\x01"}, "s": "x"}, {"blob": dict, "s": str}
    assert build(inputs, types, url="http://h/{inputs.s}").url == "http://h/x"
    with pytest.raises(TemplateError, match=r"\{inputs.blob\}: the input does not convert to JSON text"):
        build(inputs, types, url="http://h/{inputs.blob}")


def test_a_dotted_placeholder_reaches_into_a_map_input():
    request = build({"m": {"k": "v"}}, {"m": dict[str, str]}, url="http://h/{inputs.m.k}")
    assert request.url == "http://h/v"
    with pytest.raises(TemplateError, match=r"\{inputs.m.nope\}: the input has no key 'nope'"):
        build({"m": {"k": "v"}}, {"m": dict[str, str]}, url="http://h/{inputs.m.nope}")


def test_a_missing_input_is_an_error_naming_it():
    with pytest.raises(
        TemplateError, match=r"names the input 'item_id', which the task was not given \(its inputs: s\)"
    ):
        build({"s": "x"}, {"s": str}, headers={"X": "id {inputs.item_id}"})


@pytest.mark.parametrize("placeholder", ["{other.thing}", "{inputs}x{a.b}"])
def test_an_unknown_placeholder_is_an_error(placeholder):
    with pytest.raises(TemplateError, match="unknown placeholder"):
        build(url="http://h/" + placeholder)


def test_secrets_fill_url_and_headers_but_the_shown_url_keeps_the_placeholder():
    request = build(
        url="https://hooks.example/{secrets.path}?v=1",
        headers={"Authorization": "Bearer {secrets.token}", "X-Plain": "p"},
        secret={"path": "P-123456", "token": "T-123456"},
    )
    assert request.url == "https://hooks.example/P-123456?v=1"
    assert request.shown_url == "https://hooks.example/{secrets.path}?v=1"
    assert request.headers == {"Authorization": "Bearer T-123456", "X-Plain": "p"}
    assert request.secret_headers == {"authorization"}


def test_secrets_are_not_filled_in_data():
    with pytest.raises(TemplateError, match="secrets are filled in url and headers only"):
        build(data={"token": "{secrets.token}"}, secret={"token": "T"})


def test_an_input_cannot_smuggle_a_secret_placeholder_in():
    request = build({"q": "{secrets.token}"}, {"q": str}, url="http://h/?q={inputs.q}", secret={"token": "T-123456"})
    assert request.url == "http://h/?q={secrets.token}"  # filled in one pass: the input's text stays text


def test_a_missing_secret_names_where_it_was_looked_for(monkeypatch):
    monkeypatch.delenv("_FSEC_ABSENT", raising=False)
    template = WebhookTask(name="t", url="http://h", headers={"X": "{secrets.absent}"}).task_template()
    with pytest.raises(SecretNotFound, match="_FSEC_ABSENT"):
        webhook_request(template, None)


@pytest.mark.parametrize(
    ("custom", "message"),
    [
        ({"url": ""}, 'no "url"'),
        ({"url": "http://h", "method": "PUT"}, "method must be GET or POST, got 'PUT'"),
        ({"url": "http://h", "timeout_sec": 0}, "timeout_sec must be a positive number"),
        ({"url": "http://h", "headers": ["x"]}, "headers must be a dict"),
    ],
)
def test_a_bad_template_is_an_error(custom, message):
    from core_connectors.local import ConnectorTask

    template = ConnectorTask(name="t", task_type="webhook", custom=custom).task_template()
    with pytest.raises(TemplateError, match=message):
        webhook_request(template, None)


def test_defaults_and_numbers_as_written():
    template = WebhookTask(name="t", url="http://h", data={"count": 3, "ratio": 0.5}, timeout=2).task_template()
    request = webhook_request(template, None)
    assert (request.method, request.timeout, request.show_data, request.follow_redirects) == ("POST", 2.0, False, False)
    assert request.data == {"count": 3, "ratio": 0.5} and type(request.data["count"]) is int
