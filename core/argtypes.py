"""Argument checkers of the `motionclip` command line, written once for every subcommand.

Each is an argparse `type=`: it turns the text into a value or raises ArgumentTypeError with a
message naming the value and what is expected (argparse adds the option's name). `describe` sets
up a subcommand's help text with its examples.
"""

from __future__ import annotations

import argparse
import math
from typing import Any, Callable, Iterable


def describe(p: argparse.ArgumentParser, description: str, examples: Iterable[str], *, before: str = "",
             after: str = "") -> None:
    """A subcommand's help: the description, and after the options the examples (one command a line),
    with `before` / `after` text around them; line breaks are kept as written."""
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = description
    p.epilog = before + "examples:\n" + "\n".join(f"  {e}" for e in examples) + after

_Error = argparse.ArgumentTypeError


def _read(kind: Callable[[str], Any], text: str, what: str):
    """`kind(text)`, or the error "expected <what>, got '<text>'" when it raises ValueError."""
    try:
        return kind(text)
    except ValueError:
        raise _Error(f"expected {what}, got {text!r}") from None


def positive(kind: type = float) -> Callable[[str], float | int]:
    """A number of `kind` (int or float) greater than 0 (finite, for floats)."""
    def parse(text: str):
        v = _read(kind, text, f"a {kind.__name__}")
        if not (math.isfinite(v) and v > 0):
            raise _Error(f"must be positive, got {text}")
        return v
    parse.__name__ = f"positive_{kind.__name__}"
    return parse


def nonnegative_float(text: str) -> float:
    v = _read(float, text, "a number")
    if not (math.isfinite(v) and v >= 0):
        raise _Error(f"must be a number >= 0, got {text}")
    return v


def seconds(most: float) -> Callable[[str], float]:
    """A number of seconds, more than 0 and at most `most`."""
    def parse(text: str) -> float:
        v = _read(float, text, "a number of seconds")
        if not 0 < v <= most:
            raise _Error(f"must be more than 0 and at most {most:g} seconds, got {v:g}")
        return v
    parse.__name__ = "seconds"
    return parse


def int_at_least(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """A whole number in lo.. (or lo..hi)."""
    def parse(text: str) -> int:
        v = _read(int, text, "a whole number")
        if v < lo or (hi is not None and v > hi):
            raise _Error(f"must be in {lo}..{hi}, got {v}" if hi is not None else f"must be at least {lo}, got {v}")
        return v
    parse.__name__ = "whole_number"
    return parse


def port(text: str) -> int:
    v = _read(int, text, "a port number")
    if not 0 <= v <= 65535:
        raise _Error(f"must be between 0 and 65535 (0: any free port), got {v}")
    return v


def positive_ints(text: str) -> list[int]:
    """Comma-separated whole numbers, each at least 1: '35,15'."""
    values = _read(lambda t: [int(x) for x in t.split(",")], text, "comma-separated whole numbers like 35,15")
    if any(v < 1 for v in values):
        raise _Error(f"every number must be positive, got {text!r}")
    return values


def split_ratios(text: str) -> tuple[float, float, float]:
    """Three non-negative ratios train,val,test: '0.8,0.1,0.1'."""
    parts = _read(lambda t: tuple(float(x) for x in t.split(",")), text, "three numbers like 0.8,0.1,0.1")
    if len(parts) != 3 or any(not (math.isfinite(p) and p >= 0) for p in parts) or sum(parts) <= 0:
        raise _Error(f"expected three non-negative ratios train,val,test like 0.8,0.1,0.1, got {text!r}")
    return parts  # type: ignore[return-value]


def image_size(text: str) -> tuple[int, int]:
    """Pixels: '224' (square) or '640x480', 8..4096 per side."""
    parts = _read(lambda t: [int(x) for x in t.lower().replace("x", ",").split(",")], text,
                  "pixels like 224 or 640x480")
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or not all(8 <= p <= 4096 for p in parts):
        raise _Error(f"expected 8..4096 pixels per side like 224 or 640x480, got {text!r}")
    return parts[0], parts[1]


def frame_list(text: str) -> list[int]:
    """'0,30,59' or '0:120' or '0:120:10' (Python slice notation, end excluded)."""
    out: list[int] = []
    try:
        for part in text.split(","):
            if ":" in part:
                bits = [int(b) if b else None for b in part.split(":")]
                start, stop = bits[0] or 0, bits[1]
                step = bits[2] if len(bits) > 2 and bits[2] else 1
                if stop is None:
                    raise ValueError
                out += list(range(start, stop, step))
            else:
                out.append(int(part))
    except ValueError:
        raise _Error(f"expected frame numbers like 0,30,59 or a range 0:120 or 0:120:10, got {text!r}") from None
    if not out:
        raise _Error(f"no frame in {text!r}")
    return out
