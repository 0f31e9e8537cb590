"""The project's error type: raised for bad input, with a message a person can act on."""


class MotionClipError(ValueError):
    """Bad input (a file, a field, a value); the message names it and says what to do."""


def read_json(path, error: type[MotionClipError] = MotionClipError, what: str = "file"):
    """Parse a JSON file; a missing file or invalid JSON becomes `error` naming the file and line."""
    import json
    from pathlib import Path

    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from None


def check_fields(cls, d: dict, what: str, error: type[MotionClipError] = MotionClipError,
                 known_label: str = "known") -> None:
    """`error` naming the keys of `d` that are no field of the dataclass `cls`, and the fields it has."""
    from dataclasses import fields

    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise error(f"{what}: unknown field(s) {unknown}; {known_label}: {sorted(known)}")
