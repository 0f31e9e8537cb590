"""`motionclip gallery`: contact sheets of a model's motions for a few prompts, for the README.

One command regenerates the whole gallery after each new model:

    motionclip gallery --out docs/gallery [--checkpoint RUN] [--readme README.md]

For each prompt it generates a motion, renders a row of frames spread evenly over the clip (the
mannequin, a camera that follows the body (or one fitted to the whole clip), floor on) and writes
`NN-<prompt>.png`; then `gallery.json` (the figures that say whether each motion moves: the feet
and hands relative to the pelvis, the root's speed, the hands' highest point above the head) and
`README.md` (each image under its prompt). `snippet.md` is the same list with links relative to
the folder the command ran in, for the project's README; `--readme FILE` writes it there, between
`<!-- gallery -->` and `<!-- /gallery -->`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from motionclip.core.errors import MotionClipError

DEFAULT_PROMPTS = (
    "a person walks forward",
    "a person runs forward",
    "a person waves with the right hand",
    "a person raises both hands above the head",
    "a person walks forward and turns to the left",
    "a person waves both hands",
    "a person bows",
    "a person kicks",
)
MARK_BEGIN, MARK_END = "<!-- gallery -->", "<!-- /gallery -->"

# SMPL joints
PELVIS, HEAD, L_WRIST, R_WRIST = 0, 15, 20, 21


class GalleryError(MotionClipError):
    """The gallery cannot be made: a bad prompts file or option."""


def read_prompts(path: str | os.PathLike) -> list[str]:
    """Prompts from a text file, one a line; blank lines and lines starting with # are skipped."""
    from motionclip.core.inference import MAX_PROMPT_CHARS

    path = Path(path)
    if not path.exists():
        raise GalleryError(f"prompts file {path} not found")
    if path.is_dir():
        raise GalleryError(f"prompts file {path} is a folder; give a text file with one prompt a line")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise GalleryError(f"prompts file {path} is not UTF-8 text; give one prompt a line") from None
    prompts = [line.strip() for line in text.splitlines()]
    prompts = [p for p in prompts if p and not p.startswith("#")]
    if not prompts:
        raise GalleryError(f"prompts file {path} has no prompt; write one prompt a line")
    for i, p in enumerate(prompts):
        if len(p) > MAX_PROMPT_CHARS:
            raise GalleryError(f"prompts file {path}: prompt {i + 1} is {len(p)} characters long; keep it under "
                               f"{MAX_PROMPT_CHARS}")
    return prompts


def slug(text: str, limit: int = 48) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:limit].rstrip("-") or "prompt"


def motion_figures(motion, skeleton=None) -> dict:
    """Whether a motion moves, in numbers (metres, m/s; Y up).

    ankle_speed_m_s / wrist_speed_m_s: mean speed of the two ankles / wrists relative to the pelvis
    (joint minus pelvis position, frame-to-frame displacement x fps, averaged over the frames and the
    two joints: stepping legs, moving hands); l_wrist_speed_m_s / r_wrist_speed_m_s: each wrist on
    its own (a one-handed wave);
    root_speed_m_s: mean horizontal speed of the pelvis; travel_m: horizontal distance from the
    first frame's pelvis to the last one's; wrist_above_head_m: the highest either wrist gets above
    the head joint over the clip (negative: the hands stay below the head)."""
    import numpy as np

    from motionclip.train.liveliness import limb_speeds  # the same speeds `motionclip eval` reports

    joints = motion.joints(skeleton)  # [T, 24, 3]
    fps = float(motion.fps)
    speeds = limb_speeds(joints, fps)  # ankles, wrists (relative to the pelvis), root (horizontal)
    j = joints.double().numpy()
    rel = j - j[:, PELVIS:PELVIS + 1]

    def speed(k: int) -> float:
        if len(j) < 2:
            return 0.0
        return float(np.linalg.norm(np.diff(rel[:, k], axis=0), axis=-1).mean() * fps)

    root = j[:, PELVIS][:, [0, 2]]
    above = np.maximum(j[:, L_WRIST, 1], j[:, R_WRIST, 1]) - j[:, HEAD, 1]
    return {
        "ankle_speed_m_s": round(speeds["ankles"], 4),
        "wrist_speed_m_s": round(speeds["wrists"], 4),
        "l_wrist_speed_m_s": round(speed(L_WRIST), 4),
        "r_wrist_speed_m_s": round(speed(R_WRIST), 4),
        "root_speed_m_s": round(speeds["root"], 4),
        "travel_m": round(float(np.linalg.norm(root[-1] - root[0])), 4),
        "wrist_above_head_m": round(float(above.max()), 4),
    }


def sheet_frames(num_frames: int, count: int) -> list[int]:
    """`count` frame numbers spread evenly from the first frame to the last (fewer for short clips)."""
    if num_frames <= count:
        return list(range(num_frames))
    return [int(round(i * (num_frames - 1) / (count - 1))) for i in range(count)] if count > 1 else [0]


def _figures_line(f: dict) -> str:
    return (f"feet {f['ankle_speed_m_s']:.2f} m/s, hands L {f['l_wrist_speed_m_s']:.2f} / "
            f"R {f['r_wrist_speed_m_s']:.2f} m/s (relative to the pelvis); root {f['root_speed_m_s']:.2f} m/s, "
            f"travel {f['travel_m']:.2f} m; highest hand {abs(f['wrist_above_head_m']):.2f} m "
            f"{'above' if f['wrist_above_head_m'] >= 0 else 'below'} the head")


def markdown(entries: list[dict], prefix: str = "", heading: bool = True, model: str = "", settings: str = "") -> str:
    """The gallery as Markdown: each prompt in bold, its contact sheet, its figures."""
    lines = []
    if heading:
        lines += ["# Gallery", "",
                  f"Made by `motionclip gallery` with {model}{settings}. Frames run left to right, spread evenly "
                  "over each clip. Figures: `gallery.json`.", ""]
    for e in entries:
        lines += [f"**{e['prompt']}**", "", f"![{e['prompt']}]({prefix}{e['image']})", "",
                  f"<sub>{_figures_line(e)}</sub>", ""]
    return "\n".join(lines).rstrip() + "\n"


def _marker(text: str, mark: str, start: int = 0) -> re.Match | None:
    """The first line at or after `start` that is `mark` alone (a mention inside prose does not count)."""
    return re.compile(rf"^[ \t]*{re.escape(mark)}[ \t]*$", re.M).search(text, start)


def update_readme(readme: Path, snippet: str) -> None:
    """Put `snippet` between the gallery marker lines of `readme` (a lone `<!-- gallery -->` line opens them)."""
    from motionclip.core.files import atomic_write_text

    text = readme.read_text(encoding="utf-8")
    begin = _marker(text, MARK_BEGIN)
    if begin is None:
        raise GalleryError(f"{readme} has no `{MARK_BEGIN}` line to put the gallery under")
    end = _marker(text, MARK_END, begin.end())
    stop = end.end() if end is not None else begin.end()
    atomic_write_text(readme, f"{text[:begin.start()]}{MARK_BEGIN}\n{snippet.rstrip()}\n{MARK_END}{text[stop:]}")


def write_small_png(image, path: Path, colors: int = 128) -> Path:
    """A PNG kept small for committing: a palette of `colors` colours (the pictures are flat-shaded)."""
    from PIL import Image

    from .video import _temp_beside

    tmp = _temp_beside(path)
    try:
        img = Image.fromarray(image)
        if colors:
            img = img.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        img.save(tmp, format="PNG", optimize=True)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # an ordinary file's mode, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def add_gallery(p: argparse.ArgumentParser) -> None:
    from motionclip.core.argtypes import describe, int_at_least, positive

    describe(p, ("Generate a motion for each prompt with the model (default: the built-in one) and render it as "
                 "a contact sheet: one row of frames spread evenly over the clip (the mannequin, a camera that "
                 "follows the body or one fitted to the whole clip, floor on), one small PNG per prompt. Writes "
                 "DIR/NN-<prompt>.png, DIR/gallery.json (per prompt: mean ankle and wrist speeds relative to the "
                 "pelvis, root speed and travel, the wrists' highest point above the head), DIR/README.md (each "
                 "image under its prompt) and DIR/snippet.md (the same, linked from the current folder: run "
                 "from the repository root and paste it into README.md, or pass --readme README.md)."),
             ["motionclip gallery --out docs/gallery --readme README.md",
              "motionclip gallery --out /tmp/gallery --checkpoint runs/big --prompts prompts.txt --seconds 3"],
             before="default prompts:\n" + "".join(f"  {p}\n" for p in DEFAULT_PROMPTS))
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--checkpoint", type=Path, metavar="RUN", help="a run directory (default: the built-in model)")
    p.add_argument("--prompts", type=Path, metavar="FILE",
                   help="a text file, one prompt a line (# comments and blank lines skipped; default: the "
                        f"{len(DEFAULT_PROMPTS)} below)")
    p.add_argument("--seconds", type=positive(float), default=4.0, help="length of each motion (default 4)")
    p.add_argument("--frames-per-sheet", type=int_at_least(1, 64), default=8, metavar="N",
                   help="frames in each sheet's row (default 8)")
    p.add_argument("--size", type=int_at_least(32, 1024), default=160, metavar="PX",
                   help="pixels per frame, square (default 160)")
    p.add_argument("--seed", type=int, help="variation seed (default: none, the prompt's own latent)")
    p.add_argument("--azimuth", type=float, default=30.0, help="view, degrees from the front toward the left (default 30)")
    p.add_argument("--elevation", type=float, default=12.0, help="degrees above the horizon (default 12)")
    p.add_argument("--camera", choices=("follow", "fit"), default="follow",
                   help="follow: the camera moves with the body, so limbs stay large on long walks and runs (travel "
                        "shows against the floor's edge); fit: one camera fitted to the whole clip (default follow)")
    p.add_argument("--colors", type=int_at_least(0, 256), default=128,
                   help="palette size of the PNGs, to keep them small (0: full colour; default 128)")
    p.add_argument("--readme", type=Path, metavar="FILE",
                   help=f"also write the gallery into FILE between `{MARK_BEGIN}` and `{MARK_END}`")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.set_defaults(func=cmd_gallery)


def cmd_gallery(args) -> int:
    from .api import get_renderer, render_frames
    from .bodies import make_body
    from .scene import SceneOptions
    from .video import check_writable, contact_sheet

    prompts = read_prompts(args.prompts) if args.prompts else list(DEFAULT_PROMPTS)
    if args.readme is not None and _marker(_read_text(args.readme), MARK_BEGIN) is None:
        raise GalleryError(f"{args.readme} has no `{MARK_BEGIN}` line to put the gallery under")
    out = Path(args.out)
    check_writable(out, "dir")
    get_renderer("pyrender")  # a missing OpenGL library fails before the model loads

    from motionclip.core.inference import MotionModel

    model = MotionModel(args.checkpoint, device=args.device)
    motions = model.generate_batch([dict(prompt=p, seconds=args.seconds, seed=args.seed) for p in prompts])
    body = make_body("mannequin")
    opts = SceneOptions(size=args.size, camera=args.camera, azimuth=args.azimuth, elevation=args.elevation, floor=True)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, (prompt, motion) in enumerate(zip(prompts, motions)):
        frames = sheet_frames(motion.num_frames, args.frames_per_sheet)
        images = render_frames(motion, frames, body=body, options=opts)
        name = f"{i + 1:02d}-{slug(prompt)}.png"
        write_small_png(contact_sheet(images, columns=len(frames)), out / name, args.colors)
        figures = motion_figures(motion, model.skeleton)
        entries.append({"prompt": prompt, "image": name, "frames": motion.num_frames, "fps": motion.fps,
                        "sheet_frames": frames, **figures})
        print(f"{out / name}: \"{prompt}\": {_figures_line(figures)}", file=sys.stderr)
    settings = f", {args.seconds:g} s per motion" + (f", seed {args.seed}" if args.seed is not None else "")
    what = "the built-in model" if args.checkpoint is None else f"the model in `{args.checkpoint}`"
    from motionclip.core import __version__
    from motionclip.core.files import atomic_write_text

    info = {"model": model.name, "motionclip": __version__, "seconds": args.seconds, "seed": args.seed,
            "frames_per_sheet": args.frames_per_sheet, "size": args.size, "azimuth": args.azimuth,
            "elevation": args.elevation, "body": "mannequin", "camera": args.camera, "floor": True, "prompts": entries}
    atomic_write_text(out / "gallery.json", json.dumps(info, indent=1) + "\n")
    atomic_write_text(out / "README.md", markdown(entries, model=what, settings=settings))
    prefix = Path(os.path.relpath(out.resolve(), Path.cwd())).as_posix() + "/"
    snippet = markdown(entries, prefix=prefix, heading=False)
    atomic_write_text(out / "snippet.md", snippet)
    if args.readme is not None:  # links relative to the README's folder
        rel = Path(os.path.relpath(out.resolve(), args.readme.resolve().parent)).as_posix() + "/"
        update_readme(args.readme, markdown(entries, prefix=rel, heading=False))
    print(f"wrote {len(entries)} contact sheet(s), gallery.json, README.md and snippet.md into {out}"
          + (f"; updated {args.readme}" if args.readme is not None else ""))
    return 0


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise GalleryError(f"--readme {path} not found")
    return path.read_text(encoding="utf-8")
