"""Rotation conversions: axis-angle, quaternion, rotation matrix, 6D, Euler.

The one module that converts between representations. Everything is batched over
leading dimensions, differentiable, and written to stay finite near 0 and near pi.

Conventions (used across the project):
- quaternions are (w, x, y, z), unit length; q and -q are the same rotation;
- matrices act on column vectors (v' = R @ v);
- 6D is the first two *columns* of the matrix, concatenated: [..., 6] = (R[:, 0], R[:, 1])
  (Zhou et al., "On the continuity of rotation representations", CVPR 2019);
- axis-angle is a 3-vector whose direction is the axis and whose norm is the angle (rad);
- Euler orders are intrinsic, as BVH uses them: "ZXY" means R = Rz @ Rx @ Ry.
"""

from __future__ import annotations

import torch
from torch import Tensor

_EPS = 1e-8


def _safe_norm(v: Tensor, dim: int = -1, keepdim: bool = False) -> Tensor:
    # sqrt has an infinite gradient at 0; clamp the squared norm first.
    return torch.sqrt(torch.clamp((v * v).sum(dim=dim, keepdim=keepdim), min=_EPS * _EPS))


# --- axis-angle <-> quaternion -------------------------------------------------------

def axis_angle_to_quat(aa: Tensor) -> Tensor:
    """[..., 3] -> [..., 4] (w, x, y, z)."""
    angle = _safe_norm(aa, keepdim=True)  # [..., 1]
    half = 0.5 * angle
    # sin(h)/angle = 0.5 * sinc(h); use a Taylor series near 0 so gradients stay finite.
    small = angle < 1e-4
    k = torch.where(small, 0.5 - angle * angle / 48.0, torch.sin(half) / torch.where(small, torch.ones_like(angle), angle))
    return torch.cat([torch.cos(half), aa * k], dim=-1)


def quat_to_axis_angle(q: Tensor) -> Tensor:
    """[..., 4] -> [..., 3], angle in [0, pi]."""
    q = quat_normalize(q)
    # Pick the hemisphere with w >= 0 so the angle is at most pi.
    q = torch.where(q[..., :1] < 0, -q, q)
    xyz = q[..., 1:]
    s = _safe_norm(xyz, keepdim=True)
    angle = 2.0 * torch.atan2(s, q[..., :1])  # stable near 0 and pi
    small = s < 1e-4
    # angle / sin(angle / 2) -> 2 + angle^2 / 12 as angle -> 0
    k = torch.where(small, 2.0 + angle * angle / 12.0, angle / torch.where(small, torch.ones_like(s), s))
    return xyz * k


# --- quaternion algebra -----------------------------------------------------------------

def quat_normalize(q: Tensor) -> Tensor:
    return q / _safe_norm(q, keepdim=True)


def quat_mul(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a * b (apply b, then a)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def quat_conj(q: Tensor) -> Tensor:
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def quat_canonical(q: Tensor) -> Tensor:
    """The representative with w >= 0 (q and -q are the same rotation)."""
    return torch.where(q[..., :1] < 0, -q, q)


def quat_slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation along the shorter arc. a, b: [..., 4]; t broadcastable to [..., 1]."""
    dot = (a * b).sum(-1, keepdim=True)
    b = torch.where(dot < 0, -b, b)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    sin_theta = torch.sin(theta)
    near = sin_theta < 1e-5
    safe = torch.where(near, torch.ones_like(sin_theta), sin_theta)
    wa = torch.where(near, 1.0 - t, torch.sin((1.0 - t) * theta) / safe)
    wb = torch.where(near, t, torch.sin(t * theta) / safe)
    return quat_normalize(wa * a + wb * b)


# --- quaternion <-> matrix ---------------------------------------------------------------

def quat_to_matrix(q: Tensor) -> Tensor:
    """[..., 4] -> [..., 3, 3]."""
    w, x, y, z = quat_normalize(q).unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    m = torch.stack(
        [
            1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
            2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
            2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
        ],
        dim=-1,
    )
    return m.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(m: Tensor) -> Tensor:
    """[..., 3, 3] -> [..., 4] with w >= 0.

    For a rotation, the symmetric matrix K below equals 4 q q^T (Bar-Itzhack); its row with the
    largest diagonal entry is 4 q_i q, which is well conditioned everywhere, including
    rotations by pi where w = 0 (Shepperd's choice).
    """
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    a, b, c, d = m21 - m12, m02 - m20, m10 - m01, m10 + m01
    e, f = m02 + m20, m21 + m12
    diag = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22])
    rows = (  # rows of K, off-diagonal entries shared
        torch.stack([diag[0], a, b, c], dim=-1),
        torch.stack([a, diag[1], d, e], dim=-1),
        torch.stack([b, d, diag[2], f], dim=-1),
        torch.stack([c, e, f, diag[3]], dim=-1),
    )
    # Keep the row with the largest diagonal entry (comparisons: much faster than argmax on CPU).
    q, top = rows[0], diag[0]
    for k in (1, 2, 3):
        take = diag[k] > top
        q = torch.where(take[..., None], rows[k], q)
        top = torch.maximum(top, diag[k])
    return quat_canonical(quat_normalize(q))


# --- axis-angle <-> matrix ------------------------------------------------------------------

def axis_angle_to_matrix(aa: Tensor) -> Tensor:
    return quat_to_matrix(axis_angle_to_quat(aa))


def matrix_to_axis_angle(m: Tensor) -> Tensor:
    return quat_to_axis_angle(matrix_to_quat(m))


# --- 6D ----------------------------------------------------------------------------------------

def matrix_to_rot6d(m: Tensor) -> Tensor:
    """[..., 3, 3] -> [..., 6]: the first two columns."""
    return torch.cat([m[..., :, 0], m[..., :, 1]], dim=-1)


def rot6d_to_matrix(d6: Tensor) -> Tensor:
    """[..., 6] -> [..., 3, 3] by Gram-Schmidt; any 6-vector (e.g. a network output) maps to a rotation."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = a1 / _safe_norm(a1, keepdim=True)
    b2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = b2 / _safe_norm(b2, keepdim=True)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def quat_to_rot6d(q: Tensor) -> Tensor:
    return matrix_to_rot6d(quat_to_matrix(q))


def rot6d_to_quat(d6: Tensor) -> Tensor:
    return matrix_to_quat(rot6d_to_matrix(d6))


def axis_angle_to_rot6d(aa: Tensor) -> Tensor:
    return matrix_to_rot6d(axis_angle_to_matrix(aa))


# --- Euler (BVH) ---------------------------------------------------------------------------------

_AXIS = {"X": 0, "Y": 1, "Z": 2}


def euler_to_matrix(angles: Tensor, order: str) -> Tensor:
    """Intrinsic Euler angles in radians, [..., 3] in the order given -> [..., 3, 3].

    order "ZXY": R = Rz(angles[..., 0]) @ Rx(angles[..., 1]) @ Ry(angles[..., 2]).
    """
    order = order.upper()
    if len(order) != 3 or set(order) - set("XYZ"):
        raise ValueError(f"Euler order must be three of X, Y, Z (e.g. 'ZXY'), got {order!r}")
    # Right-multiplying by a rotation about axis a only mixes the other two columns
    # (i, k) = (a+1, a+2): col_i' = c col_i + s col_k, col_k' = c col_k - s col_i. Working on
    # columns avoids building and multiplying 3x3 matrices.
    eye = torch.eye(3, dtype=angles.dtype, device=angles.device)
    cols = [eye[:, 0].expand(angles.shape[:-1] + (3,)), eye[:, 1].expand(angles.shape[:-1] + (3,)),
            eye[:, 2].expand(angles.shape[:-1] + (3,))]
    for n, axis in enumerate(order):
        a = _AXIS[axis]
        i, k = (a + 1) % 3, (a + 2) % 3
        c = torch.cos(angles[..., n])[..., None]
        s = torch.sin(angles[..., n])[..., None]
        cols[i], cols[k] = c * cols[i] + s * cols[k], c * cols[k] - s * cols[i]
    return torch.stack(cols, dim=-1)


def matrix_to_euler(m: Tensor, order: str) -> Tensor:
    """Inverse of euler_to_matrix for Tait-Bryan orders (three distinct axes); radians."""
    order = order.upper()
    i, j, k = (_AXIS[a] for a in order)
    if len({i, j, k}) != 3:
        raise ValueError(f"only Tait-Bryan orders with three distinct axes are supported, got {order!r}")
    # R = R_i(a) R_j(b) R_k(c); sign is +1 for cyclic orders (XYZ, YZX, ZXY).
    sign = 1.0 if (j - i) % 3 == 1 else -1.0
    b = torch.asin(torch.clamp(sign * m[..., i, k], -1.0, 1.0))
    a = torch.atan2(-sign * m[..., j, k], m[..., k, k])
    c = torch.atan2(-sign * m[..., i, j], m[..., i, i])
    # Gimbal lock (|b| = pi/2): a and c are coupled; put everything in a.
    lock = m[..., i, k].abs() > 1.0 - 1e-9
    if bool(lock.any()):
        a_lock = torch.atan2(sign * m[..., k, j], m[..., j, j])
        a = torch.where(lock, a_lock, a)
        c = torch.where(lock, torch.zeros_like(c), c)
    return torch.stack([a, b, c], dim=-1)


# --- construction helpers ---------------------------------------------------------------------------

def rotation_between(a: Tensor, b: Tensor) -> Tensor:
    """Smallest rotation matrix taking direction a to direction b. [..., 3] -> [..., 3, 3].

    For (nearly) opposite directions the result turns a by pi about an axis perpendicular to
    it, then by the small remaining angle onto b, which stays accurate where 1 + a.b vanishes.
    """
    a = a / _safe_norm(a, keepdim=True)
    b = b / _safe_norm(b, keepdim=True)

    def direct(u: Tensor, v: Tensor) -> Tensor:  # quaternion (1 + u.v, u x v), normalised
        return quat_normalize(torch.cat([1.0 + (u * v).sum(-1, keepdim=True), torch.cross(u, v, dim=-1)], dim=-1))

    q = direct(a, b)
    opposite = (1.0 + (a * b).sum(-1, keepdim=True)) < 1e-3
    if bool(opposite.any()):
        helper = torch.where(a[..., :1].abs() < 0.9, a.new_tensor([1.0, 0.0, 0.0]), a.new_tensor([0.0, 1.0, 0.0]))
        axis = torch.cross(a, helper.expand_as(a), dim=-1)
        half_turn = torch.cat([torch.zeros_like(a[..., :1]), axis / _safe_norm(axis, keepdim=True)], dim=-1)
        q = torch.where(opposite, quat_mul(direct(-a, b), half_turn), q)
    return quat_to_matrix(q)


def kabsch(src: Tensor, dst: Tensor, weights: Tensor | None = None) -> Tensor:
    """Rotation R minimising sum_i w_i |R src_i - dst_i|^2. src, dst: [..., N, 3] -> [..., 3, 3]."""
    if weights is None:
        weights = torch.ones(src.shape[:-1], dtype=src.dtype, device=src.device)
    h = (src * weights[..., None]).transpose(-1, -2) @ dst  # [..., 3, 3]
    u, _, vt = torch.linalg.svd(h)
    d = torch.sign(torch.det(vt.transpose(-1, -2) @ u.transpose(-1, -2)))
    d = torch.where(d == 0, torch.ones_like(d), d)
    diag = torch.ones(h.shape[:-1], dtype=h.dtype, device=h.device)
    diag = torch.cat([diag[..., :2], d[..., None]], dim=-1)
    return vt.transpose(-1, -2) @ torch.diag_embed(diag) @ u.transpose(-1, -2)


def angle_between(a: Tensor, b: Tensor) -> Tensor:
    """Angle in radians between directions, [..., 3] -> [...]; stable for small angles."""
    cross = _safe_norm(torch.cross(a, b, dim=-1))
    dot = (a * b).sum(-1)
    return torch.atan2(cross, dot)


def rotation_angle(m: Tensor) -> Tensor:
    """Angle in radians of a rotation matrix (geodesic distance from identity)."""
    return quat_to_axis_angle(matrix_to_quat(m)).norm(dim=-1)
