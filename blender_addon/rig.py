"""The SMPL armature and its keyframes: build the rig, write a motion into an action in bulk,
read an action back as a motion.

Frames. The wire is SMPL's (Y up, metres, local rotations relative to the rest pose); the scene
is Blender's (Z up). The one conversion is the protocol's ``y_up_to_z_up_*`` (a +90 degree turn
about X). Each bone points along its limb, so its rest orientation B (bone.matrix_local) is not
the identity; a local rotation L (already Z up) is keyed as the pose-bone quaternion
``B^-1 L B``: Blender composes pose matrices as ``parent_pose @ parent_rest^-1 @ rest @ basis``,
so the bone's world rotation becomes exactly SMPL's global rotation, twist included, whatever
the bone rolls are. The root's location channel is ``B^-1 (C trans)``.

Actions. Blender 4.4+ stores F-curves in channel bags of action slots (Blender 5 removed
``Action.fcurves``); Blender 3.x-4.3 keeps them on the action. ``_fcurve_collection`` hides
the difference. Keys are written per F-curve in one ``foreach_set`` (no keyframe_insert loops).
"""

from __future__ import annotations

import re

import bpy
import numpy as np

from .protocol_loader import protocol

JOINT_NAMES = protocol.JOINT_NAMES
PARENTS = protocol.PARENTS
ROOT = JOINT_NAMES[0]

# Which child a bone points at where a joint has several (the others hang off its head).
_PRIMARY_CHILD = {"Pelvis": "Spine1", "Spine3": "Neck"}
# Bones with no child: direction (SMPL Y-up frame, or "parent" to continue the parent bone) and length.
_LEAF_TAILS = {"Head": ((0.0, 1.0, 0.0), 0.18), "L_Foot": ((0.0, 0.0, 1.0), 0.08),
               "R_Foot": ((0.0, 0.0, 1.0), 0.08), "L_Hand": ("parent", 0.07), "R_Hand": ("parent", 0.07)}
MIN_BONE = 0.02  # metres; Blender drops zero-length bones
TAG = "motionclip"  # custom property marking our armatures and actions

# Body segments for the stand-in mannequin: joint -> radius (metres) of the limb it starts.
SEGMENT_RADIUS = {
    "Pelvis": 0.11, "Spine1": 0.11, "Spine2": 0.12, "Spine3": 0.12, "Neck": 0.05, "Head": 0.1,
    "L_Hip": 0.075, "R_Hip": 0.075, "L_Knee": 0.055, "R_Knee": 0.055, "L_Ankle": 0.045, "R_Ankle": 0.045,
    "L_Foot": 0.04, "R_Foot": 0.04, "L_Collar": 0.05, "R_Collar": 0.05, "L_Shoulder": 0.05,
    "R_Shoulder": 0.05, "L_Elbow": 0.04, "R_Elbow": 0.04, "L_Wrist": 0.035, "R_Wrist": 0.035,
    "L_Hand": 0.03, "R_Hand": 0.03,
}


class RigError(Exception):
    """A motion or armature that cannot be used, with a message a person can act on."""


# ---------------------------------------------------------------- quaternion helpers (numpy, w x y z)

def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def quat_conj(q: np.ndarray) -> np.ndarray:
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    qv = np.concatenate([np.zeros(v.shape[:-1] + (1,)), v], axis=-1)
    return quat_mul(quat_mul(q, qv), quat_conj(q))[..., 1:]


def make_continuous(q: np.ndarray) -> np.ndarray:
    """Flip signs along the time axis (0) so consecutive quaternions lie in one hemisphere:
    F-curves interpolate components, and q and -q are the same rotation."""
    q = q.copy()
    for t in range(1, len(q)):
        flip = np.sum(q[t] * q[t - 1], axis=-1) < 0
        q[t][flip] *= -1.0
    return q


def _z_up_to_y_up_quats(q: np.ndarray) -> np.ndarray:
    # The inverse of the protocol's y_up_to_z_up_quaternion (w, x, y, z) -> (w, x, -z, y).
    return np.stack([q[..., 0], q[..., 1], q[..., 3], -q[..., 2]], axis=-1)


def _z_up_to_y_up_vectors(v: np.ndarray) -> np.ndarray:
    # The inverse of y_up_to_z_up_vector (x, y, z) -> (x, -z, y).
    return np.stack([v[..., 0], v[..., 2], -v[..., 1]], axis=-1)


# ---------------------------------------------------------------- rest skeleton

def rest_positions(rest_offsets) -> np.ndarray:
    """World rest positions [24, 3] (SMPL Y-up frame) from per-joint offsets; the root's is its position."""
    off = np.asarray(rest_offsets, dtype=np.float64)
    if off.shape != (len(JOINT_NAMES), 3) or not np.isfinite(off).all():
        raise RigError(f"rest_offsets must be {len(JOINT_NAMES)} finite triples, got shape {off.shape}")
    pos = np.zeros_like(off)
    for j, p in enumerate(PARENTS):
        pos[j] = off[j] if p < 0 else pos[p] + off[j]
    return pos


def bone_segments(rest_offsets) -> list[tuple[str, tuple, tuple]]:
    """(name, head, tail) per bone, Blender Z-up frame: each bone points at its (primary) child."""
    pos = rest_positions(rest_offsets)
    children: dict[int, list[int]] = {j: [] for j in range(len(JOINT_NAMES))}
    for j, p in enumerate(PARENTS):
        if p >= 0:
            children[p].append(j)
    out = []
    for j, name in enumerate(JOINT_NAMES):
        head = pos[j]
        kids = children[j]
        if kids:
            child = JOINT_NAMES.index(_PRIMARY_CHILD[name]) if name in _PRIMARY_CHILD else kids[0]
            tail = pos[child]
        else:
            direction, length = _LEAF_TAILS[name]
            if direction == "parent":
                d = head - pos[PARENTS[j]]
            else:
                d = np.asarray(direction, dtype=np.float64)
            tail = head + d / max(np.linalg.norm(d), 1e-9) * length
        if np.linalg.norm(tail - head) < MIN_BONE:
            tail = head + np.array([0.0, MIN_BONE, 0.0])
        out.append((name, protocol.y_up_to_z_up_vector(head.tolist()),
                    protocol.y_up_to_z_up_vector(tail.tolist())))
    return out


def is_smpl_armature(ob) -> bool:
    return (ob is not None and ob.type == "ARMATURE"
            and all(name in ob.data.bones for name in JOINT_NAMES))


def build_armature(name: str, rest_offsets, collection=None):
    """A new armature object with SMPL's 24 bones at the given rest skeleton (Z up), linked to
    ``collection`` (the scene's by default) and left active, in object mode."""
    scene = bpy.context.scene
    collection = collection or scene.collection
    data = bpy.data.armatures.new(name)
    ob = bpy.data.objects.new(name, data)
    collection.objects.link(ob)
    ob[TAG] = 1
    ob["motionclip_rest_offsets"] = [list(map(float, o)) for o in rest_offsets]
    view_layer = bpy.context.view_layer
    for other in view_layer.objects:
        other.select_set(False)
    view_layer.objects.active = ob
    ob.select_set(True)
    if bpy.context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        bones = {}
        for bone_name, head, tail in bone_segments(rest_offsets):
            eb = data.edit_bones.new(bone_name)
            eb.head, eb.tail = head, tail
            eb.roll = 0.0
            bones[bone_name] = eb
        for j, p in enumerate(PARENTS):
            if p >= 0:
                bones[JOINT_NAMES[j]].parent = bones[JOINT_NAMES[p]]
                bones[JOINT_NAMES[j]].use_connect = False
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    for pb in ob.pose.bones:
        pb.rotation_mode = "QUATERNION"
    if hasattr(data, "display_type"):
        data.display_type = "OCTAHEDRAL"
    return ob


def rest_quaternions(ob) -> np.ndarray:
    """Each SMPL bone's rest orientation in armature space, [24, 4] w x y z."""
    return np.array([list(ob.data.bones[n].matrix_local.to_quaternion()) for n in JOINT_NAMES], dtype=np.float64)


# ---------------------------------------------------------------- motion -> keys

def pose_channels(motion, ob) -> tuple[np.ndarray, np.ndarray]:
    """Pose-bone quaternions [T, 24, 4] and root locations [T, 3] that play ``motion`` on ``ob``."""
    rot = np.asarray(motion.rotations, dtype=np.float64)
    trans = np.asarray(motion.trans, dtype=np.float64)
    if rot.ndim != 3 or rot.shape[1:] != (len(JOINT_NAMES), 4) or trans.shape != (rot.shape[0], 3):
        raise RigError(f"the motion's rotations must be [frames][24][4] and trans [frames][3]; "
                       f"got {rot.shape} and {trans.shape}")
    # Y up -> Z up, the protocol's one conversion (component permutation, so apply it column-wise).
    w, x, y, z = np.moveaxis(rot, -1, 0)
    cw, cx, cy, cz = protocol.y_up_to_z_up_quaternion((w, x, y, z))
    local = np.stack([cw, cx, cy, cz], axis=-1)
    local /= np.linalg.norm(local, axis=-1, keepdims=True)
    tx, ty, tz = protocol.y_up_to_z_up_vector((trans[:, 0], trans[:, 1], trans[:, 2]))
    trans_z = np.stack([tx, ty, tz], axis=-1)
    b = rest_quaternions(ob)                                     # [24, 4]
    pose = quat_mul(quat_mul(quat_conj(b)[None], local), b[None])  # B^-1 L B
    loc = quat_rotate(np.broadcast_to(quat_conj(b[0]), trans_z.shape[:-1] + (4,)), trans_z)
    return make_continuous(pose), loc


def _fcurve_collection(action, ob, *, create: bool):
    """The F-curve collection of ``action`` for ``ob``: the slot's channel bag on Blender 4.4+,
    ``action.fcurves`` before."""
    if hasattr(action, "slots"):  # Blender 4.4+: slotted actions
        ad = ob.animation_data
        slot = ad.action_slot if ad is not None and ad.action == action else None
        if slot is None:
            if not create:
                slot = action.slots[0] if len(action.slots) else None
                if slot is None:
                    return []
            else:
                slot = action.slots.new(id_type="OBJECT", name=ob.name)
                if ad is not None and ad.action == action:
                    ad.action_slot = slot
        from bpy_extras import anim_utils
        if create:
            bag = anim_utils.action_ensure_channelbag_for_slot(action, slot)
        else:
            bag = anim_utils.action_get_channelbag_for_slot(action, slot)
        return bag.fcurves if bag is not None else []
    return action.fcurves


def _new_fcurve(fcurves, data_path: str, index: int, group: str):
    try:
        return fcurves.new(data_path, index=index, group_name=group)     # channel bags
    except TypeError:
        return fcurves.new(data_path, index=index, action_group=group)   # legacy actions


def _fill(fc, frames: np.ndarray, values: np.ndarray) -> None:
    n = len(frames)
    fc.keyframe_points.add(n)
    co = np.empty(2 * n, dtype=np.float32)
    co[0::2], co[1::2] = frames, values
    fc.keyframe_points.foreach_set("co", co)
    fc.keyframe_points.foreach_set("interpolation", np.full(n, _LINEAR, dtype=np.int32))
    fc.update()


_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


def action_name_for(prompt: str, suffix: str = "") -> str:
    """An action name from a prompt (Blender 3.x keeps 63 bytes of a name): the prompt, shortened
    where needed, then ``suffix`` whole."""
    name = re.sub(r"\s+", " ", prompt).strip() or "motion"
    room = max(8, 60 - len(suffix))
    if len(name) > room:
        name = name[:room - 3].rstrip() + "..."
    return name + suffix


def apply_motion(ob, motion, name: str, start_frame: int = 1, *, meta: dict | None = None):
    """Key ``motion`` on the SMPL armature ``ob`` into a new action called ``name`` (which replaces
    the armature's current action; an old action of ours with no other user is removed).
    Returns the action."""
    if not is_smpl_armature(ob):
        raise RigError(f"{ob.name!r} is not an SMPL armature: it needs bones named {', '.join(JOINT_NAMES[:4])}, ...")
    pose, loc = pose_channels(motion, ob)
    frames = start_frame + np.arange(pose.shape[0], dtype=np.float64)
    for pb in ob.pose.bones:
        if pb.name in JOINT_NAMES:
            pb.rotation_mode = "QUATERNION"
    ad = ob.animation_data or ob.animation_data_create()
    old = ad.action
    action = bpy.data.actions.new(name)
    action[TAG] = 1
    for k, v in (meta or {}).items():
        action[k] = v
    ad.action = action
    fcurves = _fcurve_collection(action, ob, create=True)
    for j, bone in enumerate(JOINT_NAMES):
        path = f'pose.bones["{bone}"].rotation_quaternion'
        for i in range(4):
            _fill(_new_fcurve(fcurves, path, i, bone), frames, pose[:, j, i])
    for i in range(3):
        _fill(_new_fcurve(fcurves, f'pose.bones["{ROOT}"].location', i, ROOT), frames, loc[:, i])
    if hasattr(action, "use_frame_range"):
        action.frame_start, action.frame_end = frames[0], frames[-1]
    if old is not None and old.get(TAG) and old.users == 0:
        bpy.data.actions.remove(old)
    return action


# ---------------------------------------------------------------- keys -> motion

def read_motion(ob, fps: float, frame_range: tuple[int, int] | None = None):
    """The armature's animation as a protocol.MotionData (SMPL Y-up), sampled at every frame of
    its action's range: for recognition and editing."""
    if not is_smpl_armature(ob):
        raise RigError(f"{getattr(ob, 'name', None)!r} is not an SMPL armature")
    ad = ob.animation_data
    if ad is None or ad.action is None:
        raise RigError(f"{ob.name!r} has no action to read; generate or import a motion first")
    action = ad.action
    first, last = frame_range or (int(round(action.frame_range[0])), int(round(action.frame_range[1])))
    fcurves = {(fc.data_path, fc.array_index): fc for fc in _fcurve_collection(action, ob, create=False)}
    frames = np.arange(first, last + 1, dtype=np.float64)
    pose = np.zeros((len(frames), len(JOINT_NAMES), 4))
    pose[..., 0] = 1.0
    for j, bone in enumerate(JOINT_NAMES):
        for i in range(4):
            fc = fcurves.get((f'pose.bones["{bone}"].rotation_quaternion', i))
            if fc is not None:
                pose[:, j, i] = [fc.evaluate(f) for f in frames]
    loc = np.zeros((len(frames), 3))
    for i in range(3):
        fc = fcurves.get((f'pose.bones["{ROOT}"].location', i))
        if fc is not None:
            loc[:, i] = [fc.evaluate(f) for f in frames]
    pose /= np.linalg.norm(pose, axis=-1, keepdims=True)
    b = rest_quaternions(ob)
    local = quat_mul(quat_mul(b[None], pose), quat_conj(b)[None])          # B q B^-1, Z up
    trans = _z_up_to_y_up_vectors(quat_rotate(np.broadcast_to(b[0], loc.shape[:-1] + (4,)), loc))
    offsets = ob.get("motionclip_rest_offsets")
    if offsets is None:
        heads = {n: np.array(ob.data.bones[n].head_local) for n in JOINT_NAMES}
        pos = np.array([_z_up_to_y_up_vectors(heads[n]) for n in JOINT_NAMES])
        offsets = [pos[j] - pos[p] if p >= 0 else pos[j] for j, p in enumerate(PARENTS)]
    return protocol.MotionData(fps=float(fps), rotations=_z_up_to_y_up_quats(local).tolist(), trans=trans.tolist(),
                               rest_offsets=[list(map(float, o)) for o in offsets])
