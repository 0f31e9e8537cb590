"""Headless batch: generate a motion for every prompt of a file and render or export each.

    blender -b [scene.blend] --python batch.py -- --prompts FILE --out DIR
            [--format mp4|png|blend|fbx|bvh] [--scene scene.blend] [--server URL] [--token T]
            [--seconds S | --frames N] [--fps F] [--seed S] [--engine workbench|eevee|cycles]
            [--resolution 640x360] [--no-body]
    python-with-bpy batch.py -- --prompts FILE --out DIR ...

Prompts: a text file (one prompt a line; blank lines and lines starting with # are skipped) or a
JSON list of prompts or of objects {"prompt", "seconds" | "frames", "seed", "name"}. A scene
file given to Blender is used as is: its camera and lights are kept, and an SMPL armature in it
(24 bones with SMPL names) is animated instead of a new one.

Writes DIR/<NNN>_<name>.<ext> per prompt (png: a folder of frames) and DIR/batch_report.json.
Relative paths are taken from the current directory. Every format gets the same scene: the
armature (and its stand-in body) keyed on frames 1..N, and for mp4, png and blend a floor, a
camera tracking the pelvis, a sun and the render settings (a .blend renders to the MP4 the batch
would have written, beside it). FBX keys start at time 0, so Blender's FBX import with its default
Animation Offset (1) puts the first pose on frame 1.
Exit code 0 when every prompt succeeded, 1 when some failed (the others are still written; the
reasons are printed and in the report), 2 when nothing could run (bad arguments, no backend).
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import time
from pathlib import Path

try:
    import bpy
except ImportError:  # run by a Python without the bpy module: nothing can run
    if __name__ == "__main__":
        print(f"error: {sys.executable} has no bpy module: run this script in Blender (blender -b --python "
              f"batch.py -- ...) or in a Python with bpy (pip install bpy)", file=sys.stderr, flush=True)
        sys.exit(2)
    raise

if not __package__:  # run as a script by Blender: import the add-on package this file lives in
    _pkg_dir = Path(__file__).resolve().parent
    sys.path.insert(0, str(_pkg_dir.parent))
    _pkg = importlib.import_module(_pkg_dir.name)
    body, client, rig, scene_setup = (importlib.import_module(f"{_pkg.__name__}.{m}")
                                      for m in ("body", "client", "rig", "scene"))
    protocol = importlib.import_module(f"{_pkg.__name__}.protocol_loader").protocol
else:
    from . import body, client, rig
    from . import scene as scene_setup
    from .protocol_loader import protocol

FORMATS = ("mp4", "png", "blend", "fbx", "bvh")


class BatchError(Exception):
    """Nothing can run: bad arguments, unreadable prompt file, no backend."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="blender -b [scene.blend] --python batch.py --",
                                 description="Generate a motion for each prompt and render or export it.")
    ap.add_argument("--prompts", type=Path, required=True, help="text file (one prompt a line) or JSON list")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--format", choices=FORMATS, default="mp4")
    ap.add_argument("--scene", type=Path, default=None, help="a .blend to start from (its camera and lights are kept)")
    ap.add_argument("--server", default=client.DEFAULT_URL, help=f"backend URL (default {client.DEFAULT_URL})")
    ap.add_argument("--token", default="", help="the server's token, if it was started with one")
    length = ap.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, default=None, help="length of each motion (default 4 s)")
    length.add_argument("--frames", type=int, default=None, help="length of each motion in frames")
    ap.add_argument("--fps", type=float, default=None, help="frame rate (default: the scene's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--engine", choices=tuple(scene_setup.ENGINES), default="workbench")
    ap.add_argument("--samples", type=int, default=16, help="render samples (eevee, cycles)")
    ap.add_argument("--resolution", default="640x360", help="WIDTHxHEIGHT (default 640x360)")
    ap.add_argument("--no-body", action="store_true", help="no stand-in body mesh (renders show nothing then)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for each answer")
    args = ap.parse_args(argv)
    m = re.fullmatch(r"(\d+)x(\d+)", args.resolution)
    if not m or not (16 <= int(m.group(1)) <= 8192 and 16 <= int(m.group(2)) <= 8192):
        ap.error(f"--resolution {args.resolution!r}: give WIDTHxHEIGHT, e.g. 640x360")
    args.resolution = (int(m.group(1)) // 2 * 2, int(m.group(2)) // 2 * 2)  # H.264 wants even sizes
    # Blender's operators want absolute paths ("not an absolute path"): resolve against the caller's cwd.
    args.prompts, args.out = args.prompts.expanduser().absolute(), args.out.expanduser().absolute()
    if args.scene is not None:
        args.scene = args.scene.expanduser().absolute()
    return args


def slug(text: str, n: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:n] or "motion"


def read_prompts(path: Path) -> tuple[list[dict], list[str]]:
    """Jobs ({prompt, name, seconds/frames, seed}) and one error line per bad entry."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchError(f"{path}: cannot read the prompt file ({exc})") from None
    jobs, errors = [], []
    if path.suffix.lower() == ".json":
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise BatchError(f"{path}: not valid JSON ({exc}); give a list of prompts") from None
        if not isinstance(items, list):
            raise BatchError(f"{path}: must hold a JSON list of prompts or of {{\"prompt\": ...}} objects")
        for i, item in enumerate(items):
            if isinstance(item, str):
                item = {"prompt": item}
            if not isinstance(item, dict) or not isinstance(item.get("prompt"), str) or not item["prompt"].strip():
                errors.append(f"{path} item {i}: needs a non-empty \"prompt\" string")
                continue
            unknown = set(item) - {"prompt", "name", "seconds", "frames", "seed"}
            if unknown:
                errors.append(f"{path} item {i}: unknown key(s) {', '.join(sorted(unknown))}")
                continue
            jobs.append(dict(item, where=f"{path} item {i}"))
    else:
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if line and not line.startswith("#"):
                jobs.append({"prompt": line, "where": f"{path} line {n}"})
    for i, job in enumerate(jobs):
        job["stem"] = f"{i + 1:03d}_{slug(str(job.get('name') or job['prompt']))}"
    if not jobs and not errors:
        raise BatchError(f"{path}: no prompts in it (one a line; # starts a comment)")
    return jobs, errors


def find_armature(scene):
    for ob in scene.objects:
        if rig.is_smpl_armature(ob):
            return ob
    return None


def ensure_addon(module: str) -> None:
    import addon_utils
    addon_utils.enable(module, default_set=False)


def export(fmt: str, arm, path: Path, first: int, last: int) -> None:
    view_layer = bpy.context.view_layer
    for ob in view_layer.objects:
        ob.select_set(False)
    arm.select_set(True)
    kid = body.body_of(arm)
    if kid is not None:
        kid.select_set(True)
    view_layer.objects.active = arm
    if fmt == "fbx":
        if not hasattr(bpy.ops.export_scene, "fbx") or not bpy.ops.export_scene.fbx.poll():
            ensure_addon("io_scene_fbx")
        # The scene's animation stack, every frame keyed (no curve simplification). The keys start
        # at frame 0 (time 0, see KEY_START): Blender's importer adds its Animation Offset (1).
        res = bpy.ops.export_scene.fbx(filepath=str(path), use_selection=True, object_types={"ARMATURE", "MESH"},
                                       add_leaf_bones=False, bake_anim=True, bake_anim_use_all_actions=False,
                                       bake_anim_use_nla_strips=False, bake_anim_simplify_factor=0.0,
                                       bake_anim_force_startend_keying=True)
    else:  # bvh
        try:
            bpy.ops.export_anim.bvh.get_rna_type()
        except (AttributeError, KeyError):
            ensure_addon("io_anim_bvh")
        res = bpy.ops.export_anim.bvh(filepath=str(path), frame_start=first, frame_end=last,
                                      rotate_mode="NATIVE", root_transform_only=False)
    if "FINISHED" not in res:
        raise RuntimeError(f"Blender's {fmt.upper()} exporter returned {res}")


# First keyed frame per format. FBX stores key times in seconds from the scene's frame 0, and
# Blender's FBX importer puts time t on frame t * fps + Animation Offset (default 1): keys from
# frame 0 come back on frames 1..N. Every other format keys frames 1..N.
KEY_START = {"fbx": 0}


def write_output(args: argparse.Namespace, scene, arm, out: Path, first: int, last: int) -> None:
    """Render or save the keyed scene as ``args.format`` at ``out``."""
    fmt = args.format
    if fmt in ("mp4", "png", "blend"):  # what the renders show, the .blend holds
        scene_setup.stage(scene, arm, first, last, args.engine)
        scene_setup.set_engine(scene, args.engine, args.samples)
        if fmt == "blend":  # renders to <stem>.mp4 beside the .blend ("//": the .blend's folder)
            scene_setup.set_output(scene, "mp4", "//" + out.with_suffix(".mp4").name, args.resolution)
        else:
            scene_setup.set_output(scene, fmt, str(out) if fmt == "mp4" else str(out / "frame_"), args.resolution)
    if fmt in ("mp4", "png"):
        bpy.ops.render.render(animation=True)
        if fmt == "mp4" and not out.exists():
            raise RuntimeError(f"Blender wrote no {out.name}; is this Blender built with FFmpeg?")
    elif fmt == "blend":
        res = bpy.ops.wm.save_as_mainfile(filepath=str(out), copy=True)
        if "FINISHED" not in res:
            raise RuntimeError(f"Blender did not save {out} ({res})")
    else:
        export(fmt, arm, out, first, last)


def open_scene(args: argparse.Namespace):
    """The scene to work in: --scene, the .blend Blender was started with, or an empty one."""
    if args.scene is not None:
        if not args.scene.is_file():
            raise BatchError(f"{args.scene}: no such .blend file (--scene)")
        try:
            bpy.ops.wm.open_mainfile(filepath=str(args.scene))
        except RuntimeError as exc:
            raise BatchError(f"{args.scene}: Blender cannot open it ({str(exc).strip()})") from None
    elif not bpy.data.filepath:  # no scene file given: start from an empty scene, not the default cube
        bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def run_job(args: argparse.Namespace, api, scene, arm, job: dict, fps: float):
    """Generate, key and write one prompt; returns (armature, output path, motion)."""
    frames = job.get("frames", args.frames)
    seconds = job.get("seconds", args.seconds if frames is None else None)
    if frames is None and seconds is None:
        seconds = 4.0
    motion = api.generate(job["prompt"], frames=frames, seconds=seconds, fps=fps, seed=job.get("seed", args.seed))
    if arm is None:
        arm = rig.build_armature("SMPL", motion.rest_offsets)
        if not args.no_body:
            body.add_body(arm)
    first = KEY_START.get(args.format, 1)
    last = first + motion.num_frames - 1
    rig.apply_motion(arm, motion, rig.action_name_for(job["prompt"]), first, meta={"motionclip_prompt": job["prompt"]})
    scene.frame_start, scene.frame_end = first, last
    scene.frame_set(first)
    out = args.out / (job["stem"] + ("" if args.format == "png" else f".{args.format}"))
    write_output(args, scene, arm, out, first, last)
    return arm, out, motion


def run(args: argparse.Namespace) -> int:
    jobs, errors = read_prompts(args.prompts)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchError(f"{args.out}: cannot create the output folder ({exc})") from None
    try:
        api = client.Client(args.server, args.token, args.timeout)
        health = api.health(timeout=10.0)
    except client.BackendError as exc:
        raise BatchError(str(exc)) from None
    scene = open_scene(args)
    fps = args.fps or scene.render.fps / scene.render.fps_base
    if args.fps:
        scene.render.fps, scene.render.fps_base = max(1, round(args.fps)), max(1, round(args.fps)) / args.fps
    print(f"motionclip batch: {len(jobs)} prompt(s) -> {args.out} as {args.format}; backend {api.url} "
          f"({health.model}, {health.text_encoder}); {fps:g} fps", flush=True)
    arm = find_armature(scene)
    report = {"server": api.url, "model": health.model, "format": args.format, "fps": fps, "items": []}
    for e in errors:
        print(f"  skipped: {e}", file=sys.stderr, flush=True)
        report["items"].append({"status": "error", "error": e})
    failed = len(errors)
    for i, job in enumerate(jobs, 1):
        t0 = time.monotonic()
        item = {"prompt": job["prompt"], "where": job["where"]}
        try:
            arm, out, motion = run_job(args, api, scene, arm, job, fps)
            item.update(status="ok", file=str(out), frames=motion.num_frames, fps=motion.fps,
                        seconds=round(time.monotonic() - t0, 2))
            print(f"[{i}/{len(jobs)}] {job['prompt']!r}: {motion.num_frames} frames -> {out} "
                  f"({time.monotonic() - t0:.1f} s)", flush=True)
        except (client.BackendError, rig.RigError, RuntimeError, ValueError, OSError) as exc:
            failed += 1
            item.update(status="error", error=f"{job['where']}: {exc}")
            print(f"[{i}/{len(jobs)}] {job['prompt']!r}: FAILED: {exc}", file=sys.stderr, flush=True)
        report["items"].append(item)
    (args.out / "batch_report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    ok = sum(1 for it in report["items"] if it["status"] == "ok")
    print(f"motionclip batch: {ok} written, {failed} failed; report {args.out / 'batch_report.json'}", flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        if "--" in sys.argv:
            argv = sys.argv[sys.argv.index("--") + 1:]
        else:  # the bpy module: the script's own arguments; a Blender binary: none given
            argv = [] if Path(sys.argv[0]).name.lower().startswith("blender") else sys.argv[1:]
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    try:
        return run(args)
    except BatchError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.exit(code)
