"""The wire protocol between the backend server, the command line and the Blender add-on.

Standard library only: the Blender add-on carries this very file (build_addon.py copies it into
the zip) and runs it in Blender's own Python, with no torch and no backend installed.

Conventions. Everything on the wire is SMPL's: 24 joints in SMPL order with SMPL's parents,
Y up, metres, the body facing +Z in its rest pose. ``rotations`` are per-frame *local* joint
rotations relative to the rest pose, unit quaternions ``[w, x, y, z]``; ``trans`` is the root
(pelvis) translation per frame. The one place that turns this into Blender's Z-up frame is the
add-on (``y_up_to_z_up_*`` below are the formulas it uses).

Every request type has ``from_json(obj)`` that validates and raises :class:`ProtocolError`
naming the field, and ``to_json()``. A server answers a ProtocolError with HTTP 400/422 and
``{"error": {"field": ..., "message": ...}}``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

PROTOCOL_VERSION = 1
MOTION_FORMAT = "motionclip-json"

JOINT_NAMES: tuple[str, ...] = (
    "Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle", "Spine3",
    "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder", "R_Shoulder", "L_Elbow",
    "R_Elbow", "L_Wrist", "R_Wrist", "L_Hand", "R_Hand",
)
PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
NUM_JOINTS = len(JOINT_NAMES)

# Limits a server enforces and a client can check before sending.
MAX_PROMPT_CHARS = 300
MAX_FRAMES = 3600          # two minutes at 30 fps
MIN_FPS, MAX_FPS = 1.0, 240.0
MAX_SECONDS = 120.0
MAX_LABELS = 200
MAX_LABEL_CHARS = 100
MAX_ALPHAS = 16
MIN_ALPHA, MAX_ALPHA = 0.0, 1.0   # blend factors: 0 is a, 1 is b
MAX_STRENGTH = 5.0                # edit strength in [-MAX_STRENGTH, MAX_STRENGTH]
MAX_ABS_VALUE = 1e4               # bound on any motion number (metres or quaternion components)
MIN_QUAT_NORM = 1e-3              # shorter quaternions are too close to zero to normalise
MAX_BODY_BYTES = 16 * 1024 * 1024   # a 3600-frame motion in JSON is about 6 MB
MAX_SEED = 2**63 - 1


class ProtocolError(ValueError):
    """A request or response that breaks the protocol; ``field`` names the offending part."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}" if field_name else message)
        self.field = field_name
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return {"error": {"field": self.field, "message": self.message}}


# ---------------------------------------------------------------- field checks

def _obj(obj: Any, what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ProtocolError("", f"the body must be a JSON object ({what}), got {type(obj).__name__}")
    return obj


def _no_unknown(obj: dict[str, Any], known: set[str]) -> None:
    extra = sorted(set(obj) - known)
    if extra:
        raise ProtocolError(extra[0], f"unknown field; expected some of {', '.join(sorted(known))}")


def _text(obj: dict[str, Any], key: str, *, required: bool = True, max_chars: int = MAX_PROMPT_CHARS,
          default: str | None = None) -> str | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise ProtocolError(key, "missing; give a non-empty string")
        return default
    if not isinstance(v, str):
        raise ProtocolError(key, f"must be a string, got {type(v).__name__}")
    v = v.strip()
    if not v:
        raise ProtocolError(key, "must not be empty")
    if len(v) > max_chars:
        raise ProtocolError(key, f"is {len(v)} characters; the limit is {max_chars}")
    if any(ord(c) < 32 and c not in "\t\n" for c in v):
        raise ProtocolError(key, "contains control characters")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(key, "is not valid Unicode text (it holds a lone surrogate \\ud800-\\udfff)") from None
    return v


def _number(obj: dict[str, Any], key: str, lo: float, hi: float, *, integer: bool = False,
            default: float | int | None = None) -> Any:
    v = obj.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ProtocolError(key, f"must be a number, got {type(v).__name__}")
    if not _in_range(v, lo, hi):
        raise ProtocolError(key, f"must be between {lo:g} and {hi:g}, got {_short(v)}")
    if integer and not (isinstance(v, int) or float(v).is_integer()):
        raise ProtocolError(key, f"must be a whole number, got {v}")
    return int(v) if integer else float(v)


def _in_range(v: Any, lo: float, hi: float) -> bool:
    """A finite number (not a bool) in [lo, hi]; integers too large for a float are out of range."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        f = float(v)
    except OverflowError:
        return False
    return math.isfinite(f) and lo <= f <= hi


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class Length:
    """How long a generated motion is: ``frames`` or ``seconds`` (not both), at ``fps``."""

    frames: int | None = None
    seconds: float | None = None
    fps: float | None = None

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> "Length":
        if obj.get("frames") is not None and obj.get("seconds") is not None:
            raise ProtocolError("frames", "give frames or seconds, not both")
        length = cls(frames=_number(obj, "frames", 1, MAX_FRAMES, integer=True),
                     seconds=_number(obj, "seconds", 1e-3, MAX_SECONDS),
                     fps=_number(obj, "fps", MIN_FPS, MAX_FPS))
        if length.seconds is not None and length.seconds * (length.fps or 30.0) > MAX_FRAMES:
            raise ProtocolError("seconds", f"{length.seconds:g} s at {length.fps or 30.0:g} fps is more than "
                                           f"{MAX_FRAMES} frames")
        return length

    def as_kwargs(self) -> dict[str, Any]:
        return {"frames": self.frames, "seconds": self.seconds, "fps": self.fps}


_LENGTH_KEYS = {"frames", "seconds", "fps"}


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


# ---------------------------------------------------------------- motions

@dataclass
class MotionData:
    """A motion on the wire (also the project's ``.json`` motion file)."""

    fps: float
    rotations: list[list[list[float]]]        # [T][24][4] local quaternions w, x, y, z
    trans: list[list[float]]                  # [T][3] root translation, metres, Y up
    rest_offsets: list[list[float]] | None = None   # [24][3] each joint from its parent, rest pose
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.rotations)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"format": MOTION_FORMAT, "version": PROTOCOL_VERSION, "fps": self.fps,
                             "joint_names": list(JOINT_NAMES), "parents": list(PARENTS)}
        if self.rest_offsets is not None:
            d["rest_offsets"] = self.rest_offsets
        d.update(rotations=self.rotations, trans=self.trans, meta=self.meta)
        return d

    @classmethod
    def from_json(cls, obj: Any, where: str = "motion") -> "MotionData":
        if not isinstance(obj, dict):
            raise ProtocolError(where, f"must be a motion object, got {type(obj).__name__}")
        if obj.get("format", MOTION_FORMAT) != MOTION_FORMAT:
            raise ProtocolError(f"{where}.format", f"expected {MOTION_FORMAT!r}")
        names = obj.get("joint_names")
        if names is not None and names != list(JOINT_NAMES):
            raise ProtocolError(f"{where}.joint_names", "must be SMPL's 24 joints in SMPL order (or left out)")
        parents = obj.get("parents")
        if parents is not None and (not isinstance(parents, list) or any(isinstance(x, bool) for x in parents)
                                    or parents != list(PARENTS)):
            raise ProtocolError(f"{where}.parents", f"must be SMPL's parents {list(PARENTS)} (or left out)")
        fps = _number(obj, "fps", MIN_FPS, MAX_FPS)
        if fps is None:
            raise ProtocolError(f"{where}.fps", "missing; give the frame rate")
        rot, trans = obj.get("rotations"), obj.get("trans")
        if not isinstance(rot, list) or not rot:
            raise ProtocolError(f"{where}.rotations", "must be a non-empty list [frames][24][4]")
        if len(rot) > MAX_FRAMES:
            raise ProtocolError(f"{where}.rotations", f"{len(rot)} frames; the limit is {MAX_FRAMES}")
        if not isinstance(trans, list) or len(trans) != len(rot):
            raise ProtocolError(f"{where}.trans", f"must be a list [frames][3] with as many frames as rotations "
                                                  f"({len(rot)})")
        for t, frame in enumerate(rot):
            if not isinstance(frame, list) or len(frame) != NUM_JOINTS:
                raise ProtocolError(f"{where}.rotations[{t}]", f"must hold {NUM_JOINTS} quaternions")
            for j, q in enumerate(frame):
                if not _finite_vector(q, 4):
                    raise ProtocolError(f"{where}.rotations[{t}][{j}]", "must be 4 numbers [w, x, y, z], each "
                                                                        f"within +-{MAX_ABS_VALUE:g}")
                if sum(float(v) * float(v) for v in q) < MIN_QUAT_NORM ** 2:
                    raise ProtocolError(f"{where}.rotations[{t}][{j}]", "is (nearly) a zero quaternion; the "
                                                                        "identity is [1, 0, 0, 0]")
        for t, v in enumerate(trans):
            if not _finite_vector(v, 3):
                raise ProtocolError(f"{where}.trans[{t}]", f"must be 3 numbers (metres), each within "
                                                           f"+-{MAX_ABS_VALUE:g}")
        offsets = obj.get("rest_offsets")
        if offsets is not None and (not isinstance(offsets, list) or len(offsets) != NUM_JOINTS
                                    or not all(_finite_vector(o, 3) for o in offsets)):
            raise ProtocolError(f"{where}.rest_offsets", f"must be {NUM_JOINTS} triples of finite numbers")
        meta = obj.get("meta") or {}
        if not isinstance(meta, dict):
            raise ProtocolError(f"{where}.meta", "must be an object")
        return cls(fps=fps, rotations=rot, trans=trans, rest_offsets=offsets, meta=meta)


def _finite_vector(v: Any, n: int, bound: float = MAX_ABS_VALUE) -> bool:
    return isinstance(v, list) and len(v) == n and all(_in_range(x, -bound, bound) for x in v)


# ---------------------------------------------------------------- requests

@dataclass
class GenerateRequest:
    prompt: str
    length: Length = field(default_factory=Length)
    seed: int | None = None

    @classmethod
    def from_json(cls, obj: Any) -> "GenerateRequest":
        obj = _obj(obj, "generate")
        _no_unknown(obj, {"prompt", "seed"} | _LENGTH_KEYS)
        return cls(prompt=_text(obj, "prompt"), length=Length.parse(obj),
                   seed=_number(obj, "seed", 0, MAX_SEED, integer=True))

    def to_json(self) -> dict[str, Any]:
        return _drop_none({"prompt": self.prompt, **self.length.as_kwargs(), "seed": self.seed})


@dataclass
class InterpolateRequest:
    """Blend two prompts (``a``, ``b`` strings) or two motions (motion objects) at each ``alphas``."""

    a: str | MotionData
    b: str | MotionData
    alphas: list[float] = field(default_factory=lambda: [0.5])
    length: Length = field(default_factory=Length)
    seed: int | None = None

    @classmethod
    def from_json(cls, obj: Any) -> "InterpolateRequest":
        obj = _obj(obj, "interpolate")
        _no_unknown(obj, {"a", "b", "alphas", "seed"} | _LENGTH_KEYS)
        ends = []
        for key in ("a", "b"):
            v = obj.get(key)
            ends.append(MotionData.from_json(v, key) if isinstance(v, dict) else _text(obj, key))
        alphas = obj.get("alphas", [0.5])
        if (not isinstance(alphas, list) or not 1 <= len(alphas) <= MAX_ALPHAS
                or not all(_in_range(x, MIN_ALPHA, MAX_ALPHA) for x in alphas)):
            raise ProtocolError("alphas", f"must be a list of 1 to {MAX_ALPHAS} numbers between {MIN_ALPHA:g} and "
                                          f"{MAX_ALPHA:g} (0 is a, 1 is b)")
        return cls(a=ends[0], b=ends[1], alphas=[float(x) for x in alphas], length=Length.parse(obj),
                   seed=_number(obj, "seed", 0, MAX_SEED, integer=True))

    def to_json(self) -> dict[str, Any]:
        end = lambda v: v.to_json() if isinstance(v, MotionData) else v  # noqa: E731
        return _drop_none({"a": end(self.a), "b": end(self.b), "alphas": self.alphas, **self.length.as_kwargs(),
                           "seed": self.seed})


@dataclass
class EditRequest:
    """Move a motion's latent along the text direction ``source`` -> ``target``."""

    motion: MotionData
    source: str
    target: str
    strength: float = 1.0

    @classmethod
    def from_json(cls, obj: Any) -> "EditRequest":
        obj = _obj(obj, "edit")
        _no_unknown(obj, {"motion", "source", "target", "strength"})
        if "motion" not in obj:
            raise ProtocolError("motion", "missing; give the motion to edit")
        return cls(motion=MotionData.from_json(obj["motion"]), source=_text(obj, "source"),
                   target=_text(obj, "target"),
                   strength=_number(obj, "strength", -MAX_STRENGTH, MAX_STRENGTH, default=1.0))

    def to_json(self) -> dict[str, Any]:
        return {"motion": self.motion.to_json(), "source": self.source, "target": self.target,
                "strength": self.strength}


@dataclass
class RecognizeRequest:
    motion: MotionData
    labels: list[str]
    top: int = 5

    @classmethod
    def from_json(cls, obj: Any) -> "RecognizeRequest":
        obj = _obj(obj, "recognize")
        _no_unknown(obj, {"motion", "labels", "top"})
        if "motion" not in obj:
            raise ProtocolError("motion", "missing; give the motion to recognise")
        labels = obj.get("labels")
        if not isinstance(labels, list) or not 1 <= len(labels) <= MAX_LABELS:
            raise ProtocolError("labels", f"must be a list of 1 to {MAX_LABELS} label strings")
        clean = [_text({"labels": l}, "labels", max_chars=MAX_LABEL_CHARS) for l in labels]
        return cls(motion=MotionData.from_json(obj["motion"]), labels=clean,
                   top=_number(obj, "top", 1, MAX_LABELS, integer=True, default=5))

    def to_json(self) -> dict[str, Any]:
        return {"motion": self.motion.to_json(), "labels": self.labels, "top": self.top}


# ---------------------------------------------------------------- responses

@dataclass
class Health:
    status: str
    version: str
    model: str
    text_encoder: str
    device: str
    protocol: int = PROTOCOL_VERSION
    fps: float = 30.0
    max_frames: int | None = None     # the longest motion the model makes, in frames at `fps`

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: Any) -> "Health":
        obj = _obj(obj, "health")
        try:
            max_frames = obj.get("max_frames")
            return cls(**{k: obj[k] for k in ("status", "version", "model", "text_encoder", "device")},
                       protocol=int(obj.get("protocol", PROTOCOL_VERSION)), fps=float(obj.get("fps", 30.0)),
                       max_frames=None if max_frames is None else int(max_frames))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError("health", f"not a motionclip server's answer ({exc})") from None


@dataclass
class Motions:
    """Several motions in one answer (``/interpolate``: one per blend factor, in order)."""

    motions: list[MotionData]

    def to_json(self) -> dict[str, Any]:
        return {"motions": [m.to_json() for m in self.motions]}

    @classmethod
    def from_json(cls, obj: Any) -> "Motions":
        obj = _obj(obj, "motions")
        items = obj.get("motions")
        if not isinstance(items, list):
            raise ProtocolError("motions", "must be a list of motion objects")
        return cls([MotionData.from_json(m, f"motions[{i}]") for i, m in enumerate(items)])


@dataclass
class Recognition:
    ranked: list[tuple[str, float]]

    def to_json(self) -> dict[str, Any]:
        return {"labels": [{"label": l, "score": s} for l, s in self.ranked]}

    @classmethod
    def from_json(cls, obj: Any) -> "Recognition":
        obj = _obj(obj, "recognition")
        try:
            return cls([(str(d["label"]), float(d["score"])) for d in obj["labels"]])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError("labels", f"not a recognition answer ({exc})") from None


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas (draft 2020-12, as OpenAPI 3.1 uses) of the bodies above, by name.

    They describe the same limits as the ``from_json`` checks, which stay the authority: a body
    can fit its schema and still be refused (``frames`` and ``seconds`` together, a prompt of
    spaces, a motion longer than the model makes)."""
    num = lambda lo, hi: {"type": "number", "minimum": lo, "maximum": hi}  # noqa: E731
    vec = lambda n: {"type": "array", "items": num(-MAX_ABS_VALUE, MAX_ABS_VALUE), "minItems": n,  # noqa: E731
                     "maxItems": n}
    text = lambda limit: {"type": "string", "minLength": 1, "maxLength": limit}  # noqa: E731
    motion = {
        "type": "object", "required": ["fps", "rotations", "trans"],
        "description": "SMPL's 24 joints, Y up, metres; rotations are local quaternions [w, x, y, z].",
        "properties": {
            "format": {"type": "string", "enum": [MOTION_FORMAT]},
            "version": {"type": "integer"},
            "fps": num(MIN_FPS, MAX_FPS),
            "joint_names": {"type": "array", "items": {"type": "string", "enum": list(JOINT_NAMES)},
                            "minItems": NUM_JOINTS, "maxItems": NUM_JOINTS},
            "parents": {"type": "array", "items": {"type": "integer", "minimum": -1, "maximum": NUM_JOINTS - 1},
                        "minItems": NUM_JOINTS, "maxItems": NUM_JOINTS},
            "rest_offsets": {"type": "array", "items": vec(3), "minItems": NUM_JOINTS, "maxItems": NUM_JOINTS},
            "rotations": {"type": "array", "minItems": 1, "maxItems": MAX_FRAMES,
                          "items": {"type": "array", "items": vec(4), "minItems": NUM_JOINTS, "maxItems": NUM_JOINTS}},
            "trans": {"type": "array", "items": vec(3), "minItems": 1, "maxItems": MAX_FRAMES},
            "meta": {"type": "object"},
        },
    }
    length = {"frames": {"type": "integer", "minimum": 1, "maximum": MAX_FRAMES},
              "seconds": num(1e-3, MAX_SECONDS), "fps": num(MIN_FPS, MAX_FPS),
              "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED}}
    ref = lambda name: {"$ref": f"#/components/schemas/{name}"}  # noqa: E731
    return {
        "Motion": motion,
        "GenerateRequest": {"type": "object", "required": ["prompt"], "additionalProperties": False,
                            "properties": {"prompt": text(MAX_PROMPT_CHARS), **length}},
        "InterpolateRequest": {
            "type": "object", "required": ["a", "b"], "additionalProperties": False,
            "properties": {"a": {"anyOf": [text(MAX_PROMPT_CHARS), ref("Motion")]},
                           "b": {"anyOf": [text(MAX_PROMPT_CHARS), ref("Motion")]},
                           "alphas": {"type": "array", "items": num(MIN_ALPHA, MAX_ALPHA), "minItems": 1,
                                      "maxItems": MAX_ALPHAS}, **length}},
        "EditRequest": {"type": "object", "required": ["motion", "source", "target"], "additionalProperties": False,
                        "properties": {"motion": ref("Motion"), "source": text(MAX_PROMPT_CHARS),
                                       "target": text(MAX_PROMPT_CHARS),
                                       "strength": num(-MAX_STRENGTH, MAX_STRENGTH)}},
        "RecognizeRequest": {"type": "object", "required": ["motion", "labels"], "additionalProperties": False,
                             "properties": {"motion": ref("Motion"),
                                            "labels": {"type": "array", "items": text(MAX_LABEL_CHARS),
                                                       "minItems": 1, "maxItems": MAX_LABELS},
                                            "top": {"type": "integer", "minimum": 1, "maximum": MAX_LABELS}}},
        "Motions": {"type": "object", "required": ["motions"],
                    "properties": {"motions": {"type": "array", "items": ref("Motion")}}},
        "Recognition": {"type": "object", "required": ["labels"], "properties": {"labels": {
            "type": "array", "items": {"type": "object", "required": ["label", "score"],
                                       "properties": {"label": {"type": "string"}, "score": {"type": "number"}}}}}},
        "Health": {"type": "object", "required": ["status", "version", "model", "text_encoder", "device", "protocol"],
                   "properties": {"status": {"type": "string"}, "version": {"type": "string"},
                                  "model": {"type": "string"}, "text_encoder": {"type": "string"},
                                  "device": {"type": "string"}, "protocol": {"type": "integer"},
                                  "fps": {"type": "number"}, "max_frames": {"type": ["integer", "null"]}}},
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["field", "message"],
            "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}}},
    }


def error_message(obj: Any) -> str:
    """The person-readable message of an error body, whatever its shape."""
    if isinstance(obj, dict):
        err = obj.get("error", obj.get("detail"))
        if isinstance(err, dict):
            f, m = err.get("field"), err.get("message")
            return f"{f}: {m}" if f else str(m)
        if err is not None:
            return str(err)
    return str(obj)


# ---------------------------------------------------------------- SMPL (Y up) -> Blender (Z up)
# A rotation of +90 degrees about X takes SMPL's Y-up frame to Z-up: (x, y, z) -> (x, -z, y).

def y_up_to_z_up_vector(v: list[float] | tuple[float, float, float]) -> tuple[float, float, float]:
    x, y, z = v
    return (x, -z, y)


def y_up_to_z_up_quaternion(q: list[float] | tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """The same rotation expressed in the Z-up frame (conjugation by the +90 degree X rotation)."""
    w, x, y, z = q
    return (w, x, -z, y)
