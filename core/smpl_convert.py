"""`motionclip convert-smpl IN [OUT]`: an SMPL-family model file, once, to a plain-array `.npz`.

The official SMPL / SMPL-H downloads are Python pickles (SMPL-X `.npz` files hold pickled object
arrays too). motionclip reads them without running code (core.safe_pickle), but a plain `.npz`
is what every tool can load with numpy.load(allow_pickle=False): no unpickling at all, no
chumpy, no scipy. The conversion keeps every array (chumpy arrays and sparse matrices become
plain arrays) and leaves out the entries that are not arrays (dicts such as pose_training_info).
The result is checked by loading it as a model before it replaces OUT.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .skeleton import BodyModelError


def default_output(src: Path) -> Path:
    return src.with_suffix(".npz") if src.suffix.lower() != ".npz" else src.with_name(src.stem + "_plain.npz")


def convert_smpl(src: str | os.PathLike, dst: str | os.PathLike | None = None, *,
                 force: bool = False) -> tuple[Path, list[str], str]:
    """Write SRC's arrays to DST (default: SRC with .npz; SRC_plain.npz for an .npz), checked by loading
    it as a model. Returns (DST, the entries left out, the loaded skeleton's name)."""
    from .safe_pickle import UnsafePickleError, save_plain_npz
    from .skeleton import _guess_model_type, _read_model_data, _unreadable, load_skeleton

    src = Path(src).expanduser()
    dst = Path(dst).expanduser() if dst is not None else default_output(src)
    if not src.is_file():
        raise BodyModelError(f"SMPL model file not found: {src}; give the .pkl or .npz file you downloaded")
    if dst.suffix.lower() != ".npz":
        raise BodyModelError(f"the converted file must end in .npz, not {dst.name!r}: e.g. {dst.with_suffix('.npz')}")
    if dst.resolve() == src.resolve():
        raise BodyModelError(f"{dst} is the input file itself; give another output name, e.g. {default_output(src)}")
    if dst.exists() and not force:
        raise BodyModelError(f"{dst} already exists; give another output name, or --force to replace it")
    kind = _guess_model_type(dst)  # the type is read from the name (or folder) when the file is loaded
    try:
        data = _read_model_data(src)
    except UnsafePickleError as exc:
        raise BodyModelError(str(exc)) from None
    except Exception as exc:  # not a model file at all
        raise _unreadable(src, kind, exc) from None
    dst.parent.mkdir(parents=True, exist_ok=True)
    partial = dst.with_name(dst.stem + ".partial.npz")
    try:
        dropped = save_plain_npz(partial, data)
        try:
            skeleton = load_skeleton(partial)  # the same check every later load makes
        except BodyModelError as exc:
            raise BodyModelError(f"{src} is not a usable model, so nothing was written to {dst}: "
                                 f"{str(exc).replace(str(partial), dst.name)}") from None
        os.replace(partial, dst)
    finally:
        partial.unlink(missing_ok=True)
    return dst, dropped, skeleton.name


def cmd_convert_smpl(args) -> int:
    out, dropped, name = convert_smpl(args.input, args.output, force=args.force)
    left = f"; left out (not arrays): {', '.join(dropped)}" if dropped else ""
    print(f"wrote {out} ({name} model, plain arrays, loads without pickle{left})")
    print(f"use it with --smpl-model {out} (or MOTIONCLIP_SMPL_MODEL={out}); {args.input} is no longer needed here")
    return 0


def add_convert_smpl(p: argparse.ArgumentParser) -> None:
    from .argtypes import describe

    describe(p, ("Read an SMPL-family model file (.pkl, or .npz with pickled entries) without running code "
                 "and write its arrays to an .npz that loads with numpy.load(allow_pickle=False). Chumpy arrays "
                 "and sparse matrices become plain arrays; entries that are not arrays are left out. The "
                 "output is checked by loading it as a model. Its name (or folder) must say smpl, smplh or "
                 "smplx, as the input's does."),
             ["motionclip convert-smpl basicModel_neutral_lbs_10_207_0_v1.0.0.pkl SMPL_NEUTRAL.npz",
              "motionclip convert-smpl models/smplx/SMPLX_NEUTRAL.npz models/smplx/SMPLX_NEUTRAL_plain.npz"])
    p.add_argument("input", type=Path, metavar="IN", help="the model file (.pkl or .npz)")
    p.add_argument("output", type=Path, nargs="?", metavar="OUT",
                   help="the .npz to write (default: IN with .npz; IN_plain.npz when IN is an .npz)")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=cmd_convert_smpl)
