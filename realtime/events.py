"""Event and status messages: two ZeroMQ frames `[topic, JSON]`.

Topics: `lgnm.event.ME`, `lgnm.event.MaE` and `lgnm.status` (subscribe to the prefix
`lgnm.` for everything). The JSON bodies are specified by `realtime/schemas/
event.schema.json` ("lgnm.event/1") and `status.schema.json` ("lgnm.status/1"),
JSON Schema Draft 2020-12. Both encode and decode validate against them, so a bug in a
producer fails where it happens and a consumer gets a typed object or a `MessageError`.
`seq` counts every message of a stream (events and status) without gaps; the publisher
assigns it.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Literal

import jsonschema

from realtime.common.types import ExprType, SpotEvent, check_type

EVENT_SCHEMA = "lgnm.event/1"
STATUS_SCHEMA = "lgnm.status/1"
TOPIC_PREFIX = b"lgnm."
EVENT_TOPIC_PREFIX = b"lgnm.event."
STATUS_TOPIC = b"lgnm.status"
SCHEMA_FILES = {EVENT_SCHEMA: "event.schema.json", STATUS_SCHEMA: "status.schema.json"}
STATUS_FIELDS = ("frame", "fps", "dropped", "face", "backend", "source", "pub_dropped")


class MessageError(ValueError):
    """A message that is not valid lgnm JSON (what is wrong, and where)."""


@dataclass(frozen=True, slots=True)
class EventMessage:
    """A decoded `lgnm.event/1` message."""

    stream: str
    seq: int
    type: ExprType
    onset_frame: int
    apex_frame: int
    offset_frame: int
    onset_s: float
    offset_s: float
    score: float
    emitted_at: str  # UTC ISO-8601, e.g. 2026-01-01T12:00:00.000123Z
    latency_ms: float

    @property
    def event(self) -> SpotEvent:
        return SpotEvent(self.stream, self.type, self.onset_frame, self.apex_frame,
                         self.offset_frame, self.onset_s, self.offset_s, self.score,
                         self.latency_ms)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": EVENT_SCHEMA, **asdict(self)}


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """A decoded `lgnm.status/1` message; fields beyond the required ones are in `extra`."""

    stream: str
    seq: int
    frame: int
    fps: float
    dropped: int
    face: bool
    backend: str
    source: Literal["up", "down"]
    pub_dropped: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "extra"}
        return {"schema": STATUS_SCHEMA, **self.extra, **d}


Message = EventMessage | StatusMessage


@functools.cache
def load_schema(schema: str) -> dict[str, Any]:
    """The JSON Schema of "lgnm.event/1" or "lgnm.status/1" (read once, never mutated)."""
    text = resources.files("realtime").joinpath("schemas", SCHEMA_FILES[schema]).read_text()
    return json.loads(text)


@functools.cache
def _validator(schema: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(schema))


@functools.cache
def _schema_types(schema: str) -> dict[str, str]:
    """Each top-level property's JSON type in the schema file."""
    props = _validator(schema).schema.get("properties", {})
    return {k: str(v["type"]) for k, v in props.items() if isinstance(v, dict) and isinstance(v.get("type"), str)}


def _validate(doc: dict[str, Any], schema: str) -> None:
    error = jsonschema.exceptions.best_match(_validator(schema).iter_errors(doc))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "message"
        raise MessageError(f"{schema} {where}: {error.message}")
    if schema == EVENT_SCHEMA:
        if not doc["onset_frame"] <= doc["apex_frame"] <= doc["offset_frame"]:
            raise MessageError(f"{schema}: frames must satisfy onset <= apex <= offset, got "
                               f"{doc['onset_frame']}, {doc['apex_frame']}, {doc['offset_frame']}")
        if doc["onset_s"] > doc["offset_s"]:
            raise MessageError(f"{schema}: onset_s {doc['onset_s']} > offset_s {doc['offset_s']}")


def utc_now_iso() -> str:
    """Now in UTC, ISO-8601 with microseconds and a Z suffix."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def event_topic(type: ExprType) -> bytes:
    return EVENT_TOPIC_PREFIX + check_type(type).encode()


def _dumps(doc: dict[str, Any]) -> bytes:
    try:  # NaN/Infinity are not JSON; refuse them rather than emit unparsable text
        return json.dumps(doc, allow_nan=False, separators=(",", ":")).encode()
    except ValueError as exc:
        raise MessageError(f"{doc.get('schema')}: {exc}") from None


def event_dict(event: SpotEvent, seq: int, emitted_at: str | None = None) -> dict[str, Any]:
    """The validated JSON object of an event."""
    doc = {
        "schema": EVENT_SCHEMA, "stream": event.stream, "seq": seq, "type": event.type,
        "onset_frame": event.onset_frame, "apex_frame": event.apex_frame,
        "offset_frame": event.offset_frame, "onset_s": event.onset_s,
        "offset_s": event.offset_s, "score": event.score,
        "emitted_at": emitted_at or utc_now_iso(), "latency_ms": event.latency_ms,
    }
    _check_finite(doc)
    _validate(doc, EVENT_SCHEMA)
    return doc


def encode_event(event: SpotEvent, seq: int, emitted_at: str | None = None) -> list[bytes]:
    """`[topic, JSON]` frames of an event (emitted_at defaults to now)."""
    return [event_topic(event.type), _dumps(event_dict(event, seq, emitted_at))]


def status_dict(stream: str, seq: int, *, frame: int, fps: float, dropped: int, face: bool,
                backend: str, source: Literal["up", "down"], pub_dropped: int,
                **extra: Any) -> dict[str, Any]:
    """The validated JSON object of a status message; `extra` adds optional fields."""
    doc = {**extra, "schema": STATUS_SCHEMA, "stream": stream, "seq": seq, "frame": frame,
           "fps": fps, "dropped": dropped, "face": face, "backend": backend,
           "source": source, "pub_dropped": pub_dropped}
    _check_finite(doc)
    _validate(doc, STATUS_SCHEMA)
    return doc


def encode_status(stream: str, seq: int, **fields: Any) -> list[bytes]:
    """`[topic, JSON]` frames of a status message (fields as for `status_dict`)."""
    return [STATUS_TOPIC, _dumps(status_dict(stream, seq, **fields))]


def _check_finite(doc: dict[str, Any]) -> None:
    """Every number finite and one a float holds (NaN, inf and 10**400 are not)."""
    for key, value in doc.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                finite = math.isfinite(value)
            except OverflowError:  # an int past float's range
                finite = False
            if not finite:
                raise MessageError(f"{doc['schema']} {key}: must be finite, got {str(value)[:20]}")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _plain_values(doc: dict[str, Any], schema: str) -> None:
    """What JSON Schema lets pass and a consumer cannot use: an "integer" written as a
    float (1e300 is integral), a number no float holds (10**400: `_check_finite`), a string
    holding a lone surrogate (not UTF-8: printing it fails). MessageError names the field."""
    _check_finite(doc)
    integers = {k for k, v in _schema_types(schema).items() if v == "integer"}
    for key, value in doc.items():
        if key in integers and type(value) is not int:
            raise MessageError(f"{schema} {key}: {value!r} is not an integer")
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise MessageError(f"{schema} {key}: holds a lone surrogate, not UTF-8 text") from None


def decode_payload(payload: bytes | str) -> Message:
    """A typed message from its JSON body (UTF-8); MessageError names what is wrong, for
    any body (nested past the parser's depth, numbers no float holds, other encodings)."""
    try:
        text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
        doc = json.loads(text, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MessageError(f"message is not UTF-8 JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, dict):
        raise MessageError(f"message must be a JSON object, got {type(doc).__name__}")
    schema = doc.get("schema")
    if not isinstance(schema, str) or schema not in SCHEMA_FILES:
        raise MessageError(f"message schema must be one of {sorted(SCHEMA_FILES)}, "
                           f"got {str(schema)[:80]!r}")
    _plain_values(doc, schema)
    _validate(doc, schema)
    if schema == EVENT_SCHEMA:
        fields = {k: v for k, v in doc.items() if k != "schema"}
        return EventMessage(**fields)
    extra = {k: v for k, v in doc.items()
             if k not in STATUS_FIELDS and k not in ("schema", "stream", "seq")}
    return StatusMessage(stream=doc["stream"], seq=doc["seq"], extra=extra, **{k: doc[k] for k in STATUS_FIELDS})


def decode(frames: Sequence[bytes]) -> Message:
    """A typed message from its `[topic, JSON]` frames; the topic must match the body."""
    if len(frames) != 2:
        raise MessageError(f"message must have 2 frames [topic, JSON], got {len(frames)}")
    topic, payload = frames
    msg = decode_payload(payload)
    expected = event_topic(msg.type) if isinstance(msg, EventMessage) else STATUS_TOPIC
    if topic != expected:
        raise MessageError(f"topic {topic!r} does not match the message (expected {expected!r})")
    return msg
