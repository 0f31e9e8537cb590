"""A stand-in body mesh skinned to the SMPL armature: a tapered cylinder per bone, a sphere for
the head, each part rigidly weighted to its bone. Needs no licensed model file, renders in any
engine, and makes the motion readable in a viewport or a batch render."""

from __future__ import annotations

import math

import bpy
import numpy as np

from .rig import JOINT_NAMES, SEGMENT_RADIUS, TAG, bone_segments

BODY_COLOR = (0.8, 0.55, 0.35, 1.0)
_SIDES = 12


def _ring(center: np.ndarray, axis: np.ndarray, radius: float) -> list[np.ndarray]:
    axis = axis / max(np.linalg.norm(axis), 1e-9)
    ref = np.array([0.0, 0.0, 1.0]) if abs(axis[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(axis, ref)
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    return [center + radius * (math.cos(a) * u + math.sin(a) * v)
            for a in np.linspace(0.0, 2.0 * math.pi, _SIDES, endpoint=False)]


def _tube(verts: list, faces: list, a: np.ndarray, b: np.ndarray, ra: float, rb: float) -> list[int]:
    """A capped, tapered cylinder from a to b; returns its vertex indices."""
    axis = b - a
    start = len(verts)
    verts.extend(_ring(a, axis, ra) + _ring(b, axis, rb) + [a - axis / max(np.linalg.norm(axis), 1e-9) * ra * 0.5,
                                                         b + axis / max(np.linalg.norm(axis), 1e-9) * rb * 0.5])
    n = _SIDES
    for i in range(n):
        k = (i + 1) % n
        faces.append((start + i, start + k, start + n + k, start + n + i))
        faces.append((start + 2 * n, start + k, start + i))
        faces.append((start + 2 * n + 1, start + n + i, start + n + k))
    return list(range(start, len(verts)))


def _sphere(verts: list, faces: list, c: np.ndarray, r: float, rings: int = 8) -> list[int]:
    start = len(verts)
    verts.append(c + np.array([0.0, 0.0, -r]))
    for i in range(1, rings):
        phi = math.pi * i / rings - math.pi / 2
        for a in np.linspace(0.0, 2 * math.pi, _SIDES, endpoint=False):
            verts.append(c + r * np.array([math.cos(phi) * math.cos(a), math.cos(phi) * math.sin(a), math.sin(phi)]))
    verts.append(c + np.array([0.0, 0.0, r]))
    top = len(verts) - 1
    n = _SIDES
    for i in range(n):
        faces.append((start, start + 1 + (i + 1) % n, start + 1 + i))
    for ring in range(rings - 2):
        base = start + 1 + ring * n
        for i in range(n):
            k = (i + 1) % n
            faces.append((base + i, base + k, base + n + k, base + n + i))
    base = start + 1 + (rings - 2) * n
    for i in range(n):
        faces.append((top, base + i, base + (i + 1) % n))
    return list(range(start, len(verts)))


def body_parts(rest_offsets) -> tuple[list, list, dict[str, list[int]]]:
    """Vertices (Z up), faces, and the vertex indices of each bone."""
    verts: list = []
    faces: list = []
    groups: dict[str, list[int]] = {n: [] for n in JOINT_NAMES}
    seg = {name: (np.array(h), np.array(t)) for name, h, t in bone_segments(rest_offsets)}
    for name, (head, tail) in seg.items():
        r = SEGMENT_RADIUS[name]
        if name == "Head":
            groups[name] += _sphere(verts, faces, head + (tail - head) * 0.55, r)
        elif name in ("L_Hand", "R_Hand"):
            groups[name] += _sphere(verts, faces, head + (tail - head) * 0.4, r * 1.2)
        else:
            groups[name] += _tube(verts, faces, head, tail, r, r * 0.85)
    # The hips: a bar between the hip joints, moved by the pelvis.
    groups["Pelvis"] += _tube(verts, faces, seg["L_Hip"][0], seg["R_Hip"][0], 0.09, 0.09)
    return verts, faces, groups


def add_body(arm, name: str | None = None):
    """A body mesh object parented and skinned to the armature ``arm`` (an Armature modifier and
    one vertex group per bone)."""
    offsets = arm.get("motionclip_rest_offsets")
    if offsets is None:
        raise ValueError(f"{arm.name!r} was not built by this add-on; it has no rest skeleton to fit a body to")
    verts, faces, groups = body_parts([list(o) for o in offsets])
    mesh = bpy.data.meshes.new(name or f"{arm.name}_body")
    mesh.from_pydata([tuple(map(float, v)) for v in verts], [], faces)
    mesh.validate()
    for poly in mesh.polygons:
        poly.use_smooth = True
    ob = bpy.data.objects.new(name or f"{arm.name}_body", mesh)
    for coll in arm.users_collection:
        coll.objects.link(ob)
    ob[TAG] = 1
    ob.parent = arm
    for bone, idx in groups.items():
        if idx:
            ob.vertex_groups.new(name=bone).add(idx, 1.0, "REPLACE")
    mod = ob.modifiers.new("Armature", "ARMATURE")
    mod.object = arm
    mat = bpy.data.materials.get("motionclip body") or bpy.data.materials.new("motionclip body")
    mat.diffuse_color = BODY_COLOR
    try:
        mat.use_nodes = True
        bsdf = mat.node_tree.nodes.get("Principled BSDF")
        if bsdf is not None:
            bsdf.inputs["Base Color"].default_value = BODY_COLOR
            bsdf.inputs["Roughness"].default_value = 0.6
    except (AttributeError, KeyError, TypeError):
        pass
    mesh.materials.append(mat)
    return ob


def body_of(arm):
    """The body mesh this add-on made for ``arm``, or None."""
    for child in arm.children:
        if child.type == "MESH" and child.get(TAG) and any(m.type == "ARMATURE" and m.object == arm
                                                          for m in child.modifiers):
            return child
    return None
