"""MoCLIP students as text encoders: "moclip:RUN" loads the fine-tuned text encoder of a MoCLIP run.

A MoCLIP run (`motionclip train moclip`) stores the student's weights in RUN/model.safetensors
under "student.", next to the motion head. The student has the teacher's architecture and
tokenizer, so loading starts from the teacher's base model (`minilm` ships in a package; CLIP
comes from its weights file, by model name or in the CLIP cache folder: a run's config.json may not
name files elsewhere, see encoders.run_encoder_spec) and puts the student's
weights over it. The result is an ordinary frozen TextEncoder named "moclip:<run folder name>",
whose fingerprint (a content hash of the weights) must equal the one the run recorded.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch

from .base import EncoderError, TextEncoder

RUN_KIND = "moclip"
STUDENT_PREFIX = "student."
MAX_NESTING = 8  # a MoCLIP run whose teacher is a MoCLIP run, ...


class _Depth(threading.local):
    n = 0


_DEPTH = _Depth()


def student_name(run: str | Path) -> str:
    return f"moclip:{Path(run).resolve().name}"


def make_student(teacher_spec: str, device: str | torch.device | None = None, name: str = "moclip:student") -> TextEncoder:
    """A trainable private copy of the teacher's base encoder (the student before training)."""
    from . import load_encoder

    if _DEPTH.n > MAX_NESTING:
        raise EncoderError(f"teacher {teacher_spec!r}: MoCLIP runs name each other as teachers more than "
                           f"{MAX_NESTING} deep (a loop?); check the encoder.spec in their config.json files")
    _DEPTH.n += 1
    try:
        student = load_encoder(teacher_spec, device=device, text_only=True)
    finally:
        _DEPTH.n -= 1
    student.unfreeze()  # MiniLM: copies the process-wide shared model, which stays frozen for everyone else
    student.name = name
    return student


def load_student(run: str | Path, device: str | torch.device | None = None) -> TextEncoder:
    """The frozen student text encoder of a MoCLIP run directory."""
    from ..run import RunError, load_state_into, load_weights, read_config
    from . import run_encoder_spec

    run = Path(run).expanduser()
    try:
        config = read_config(run)
    except RunError as exc:
        raise EncoderError(f"moclip:{run}: {exc}") from None
    if config.get("kind") != RUN_KIND or "student" not in config:
        raise EncoderError(f"moclip:{run}: not a MoCLIP run (its config.json has no MoCLIP student); give the folder "
                           f"`motionclip train moclip --out RUN` wrote")
    teacher_spec = run_encoder_spec(config["encoder"], run)  # a run names files only where it may
    student = make_student(teacher_spec, device=device, name=student_name(run))
    try:
        tensors, _ = load_weights(run / "model.safetensors")
    except RunError as exc:
        raise EncoderError(f"moclip:{run}: {exc}") from None
    weights = {k[len(STUDENT_PREFIX):]: v for k, v in tensors.items() if k.startswith(STUDENT_PREFIX)}
    try:
        load_state_into(student, weights, str(run / "model.safetensors"))
    except RunError as exc:
        raise EncoderError(f"moclip:{run}: the student's weights do not fit the teacher's model {teacher_spec!r} "
                           f"({exc})") from None
    student.freeze()
    want = config["student"].get("fingerprint")
    if want and student.fingerprint != want:
        raise EncoderError(f"moclip:{run}: the student's weights hash to {student.fingerprint}, but the run recorded "
                           f"{want}; the run directory mixes files from different runs - retrain or restore it")
    return student
