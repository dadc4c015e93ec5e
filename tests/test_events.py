"""Event/status JSON: schema validity, round trips (hypothesis), clear errors."""

from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.common.types import SpotEvent
from realtime.events import (
    EVENT_SCHEMA,
    STATUS_SCHEMA,
    STATUS_TOPIC,
    EventMessage,
    MessageError,
    StatusMessage,
    decode,
    decode_payload,
    encode_event,
    encode_status,
    load_schema,
)

finite = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def spot_events(draw) -> SpotEvent:
    onset = draw(st.integers(1, 10**7))
    apex = draw(st.integers(onset, onset + 500))
    offset = draw(st.integers(apex, apex + 500))
    onset_s = draw(finite)
    return SpotEvent(
        stream=draw(st.text(min_size=1, max_size=20)), type=draw(st.sampled_from(["ME", "MaE"])),
        onset_frame=onset, apex_frame=apex, offset_frame=offset, onset_s=onset_s,
        offset_s=onset_s + draw(finite), score=draw(st.floats(0, 1)),
        latency_ms=draw(finite))


def _validator(schema: str) -> jsonschema.Draft202012Validator:
    doc = load_schema(schema)
    jsonschema.Draft202012Validator.check_schema(doc)
    return jsonschema.Draft202012Validator(doc)


STATUS = dict(frame=120, fps=29.5, dropped=3, face=True, backend="onnx-cpu", source="up",
              pub_dropped=0)


@given(event=spot_events(), seq=st.integers(1, 2**53))
def test_event_round_trip_and_schema(event, seq):
    topic, payload = encode_event(event, seq)
    assert topic == f"lgnm.event.{event.type}".encode()
    doc = json.loads(payload)
    _validator(EVENT_SCHEMA).validate(doc)
    msg = decode([topic, payload])
    assert isinstance(msg, EventMessage)
    assert msg.event == event and msg.seq == seq and msg.emitted_at.endswith("Z")
    assert msg.to_dict() == doc


@given(extra=st.dictionaries(st.text(min_size=1, max_size=8).filter(
    lambda k: k not in {"schema", "stream", "seq", *STATUS}), st.integers(), max_size=3))
def test_status_round_trip_with_extra_fields(extra):
    topic, payload = encode_status("cam", 7, **STATUS, **extra)
    _validator(STATUS_SCHEMA).validate(json.loads(payload))
    msg = decode([topic, payload])
    assert isinstance(msg, StatusMessage) and topic == STATUS_TOPIC
    assert (msg.stream, msg.seq, msg.frame, msg.face, msg.source) == ("cam", 7, 120, True, "up")
    assert msg.extra == extra
    assert msg.to_dict() == json.loads(payload)


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_garbage_raises_message_error(payload):
    with pytest.raises(MessageError):
        decode_payload(payload)


def _event_doc() -> dict:
    ev = SpotEvent("s", "ME", 10, 12, 20, 0.3, 0.6, 0.9, 15.0)
    return json.loads(encode_event(ev, 1)[1])


@given(key=st.sampled_from(sorted(_event_doc())),
       value=st.none() | st.lists(st.integers(), max_size=2) | st.booleans())
def test_wrong_field_values_are_rejected(key, value):
    doc = _event_doc()
    doc[key] = value
    with pytest.raises(MessageError, match=key):
        decode_payload(json.dumps(doc))


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("score"), "'score' is a required property"),
    (lambda d: d.update(score=1.5), "score: 1.5 is greater than the maximum of 1"),
    (lambda d: d.update(apex_frame=25), "onset <= apex <= offset"),
    (lambda d: d.update(type="XE"), "type"),
    (lambda d: d.update(extra=1), "Additional properties"),
    (lambda d: d.update(emitted_at="yesterday"), "emitted_at"),
])
def test_specific_errors_are_clear(change, message):
    doc = _event_doc()
    change(doc)
    with pytest.raises(MessageError, match=message):
        decode_payload(json.dumps(doc))


def test_topic_and_frame_count_checked():
    topic, payload = encode_event(SpotEvent("s", "MaE", 1, 2, 3, 0.0, 0.1, 0.5, 1.0), 3)
    with pytest.raises(MessageError, match="does not match"):
        decode([b"lgnm.event.ME", payload])
    with pytest.raises(MessageError, match="2 frames"):
        decode([payload])


def test_nan_is_refused_on_encode():
    with pytest.raises(MessageError, match="score: must be finite"):
        encode_event(SpotEvent("s", "ME", 1, 1, 2, 0.0, 0.1, float("nan"), 1.0), 1)
    with pytest.raises(MessageError, match="status"):
        encode_status("s", 1, **{**STATUS, "source": "sideways"})


@pytest.mark.parametrize("body, message", [
    (b"[" * 100000 + b"]" * 100000, "not UTF-8 JSON"),  # past the parser's depth: RecursionError
    (json.dumps(_event_doc()).encode("utf-16"), "not UTF-8 JSON"),  # json.loads would take it
    (json.dumps(dict(_event_doc(), stream="\ud800cam")).encode(), "stream: holds a lone surrogate"),
    (json.dumps(dict(_event_doc(), seq=1e300)).encode(), "seq: 1e\\+300 is not an integer"),
    (json.dumps(dict(_event_doc(), latency_ms=10**400)).encode(), "latency_ms: must be finite"),
    (json.dumps(dict(_event_doc(), score=float("nan"))).encode(), "NaN is not JSON"),
])
def test_bodies_a_consumer_cannot_use_are_message_errors(body, message):
    """Each of these ended lgnm-sub with a traceback (RecursionError, UnicodeDecodeError
    on --json's raw text, UnicodeEncodeError printing the id, OverflowError), or passed
    as a message (seq 1e300, a NaN)."""
    with pytest.raises(MessageError, match=message):
        decode_payload(body)
