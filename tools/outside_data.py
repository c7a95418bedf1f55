#!/usr/bin/env python3
"""A contract file and fault streams made outside mmguard's own code (standard library only).

mmguard's twins and fault catalogue are written by the same hands as the model; this script is
the check that it also holds on data it was not designed around. It simulates its own cell —
a four-joint planar arm with joint stops that pushes a box across a table, seen from above — with its own
physics, renderer, units and faults, and writes what a plant would hand over:

  OUT/pushing-arm.npz (+ .json)   40 episodes × 100 samples, 64×64 frames, 18 columns in raw
                                  physical units: joint angles (rad), velocities (rad/s),
                                  torques (N·m, PD control clipped at ±11 with contact torque
                                  spikes), tool and box positions (m), box yaw (rad), contact
                                  force (N) — ranges and dynamics unlike the twins'
  OUT/outside-<kind>.npz          10 new episodes (another seed) with one fault kind that
                                  mmguard's catalogue does not have, active from 30 % of every
                                  episode to its end, and its ground truth in `fault_camera` (1
                                  while active) / `fault_sensor` (while active, the largest
                                  change of any column as a share of its range), for
                                  `mmguard eval stream`
  OUT/outside-clean.npz           40 more new episodes (a third seed), no fault, levels 0: the
                                  false alarms of a run on episodes it has never seen, from
                                  more of them than the contract file's test split holds

Sensor kinds: hum (a 0.15-of-range sinusoid of period 7 readings on two columns), sign_flip
(one angle's sign inverted: a wiring error), swap (two torque columns exchanged), crosstalk
(a third of a velocity leaks into a torque), lowpass (the velocities and torques behind a
first-order lag of time constant 4 readings), decimation (every reading but each fourth held
from the one before). Camera kinds: vignette (radial darkening to 35 % at the corners),
channel_swap (RGB read as BGR), pixelate (8×8 blocks), flicker_band (a bright band of 12 rows
that moves down the frame), smudge (a blurred grey haze over one quadrant), shift (the frame
moved 6 pixels right and down, the edge repeated).

With `--scene weld` it writes the same set for a second cell, a welding one, as
OUT/welding-cell.npz: a three-joint arm that carries a MIG torch along a straight seam between
two plates (approach, arc strike, weld with a weave, arc out, retract), 18 columns — joint
angles, velocities, torques (N·m), torch position (m), torch-to-work distance (mm), arc current
(A) and voltage (V) of a constant-voltage source with short circuits, wire feed (m/min), the
feeder motor's current (A), shielding gas flow (l/min) and the pyrometer's temperature at the
torch (°C) — and frames of the plates, the seam, the glowing then cooling bead, the arm and the
arc's glare. The fault kinds are the same; the sensor ones act on this arm's angles,
velocities and torques.

Usage: python3 tools/outside_data.py --out data/outside [--seed 0] [--scene push|weld]
"""

import argparse
import array
import io
import json
import math
import os
import random
import struct
import zipfile

H = W = 64
SAMPLES = 100
SUBSTEPS = 10
DT = 0.05 / SUBSTEPS  # 20 Hz samples
LINKS = [0.32, 0.26, 0.18, 0.10]
INERTIA = [0.35, 0.18, 0.07, 0.02]
DAMPING = [0.8, 0.5, 0.2, 0.05]
KP = [60.0, 40.0, 18.0, 6.0]
KD = [6.0, 4.0, 1.5, 0.4]
TORQUE_LIMIT = 11.0
# joint travel (rad): the mechanical stops a real arm has; a joint that reaches one stops there
LIMITS = [(-1.7, 1.7), (-0.6, 2.2), (-2.4, 2.4), (-1.8, 1.8)]
BOX_HALF = 0.06
COLUMNS = (
    [(f"q{j}", "rad") for j in range(4)]
    + [(f"qd{j}", "rad/s") for j in range(4)]
    + [(f"tau{j}", "N*m") for j in range(4)]
    + [("tool_x", "m"), ("tool_y", "m"), ("box_x", "m"), ("box_y", "m"), ("box_yaw", "rad"), ("contact_force", "N")]
)
SENSOR_KINDS = ["hum", "sign_flip", "swap", "crosstalk", "lowpass", "decimation"]
CAMERA_KINDS = ["vignette", "channel_swap", "pixelate", "flicker_band", "smudge", "shift"]


def forward(q):
    """Joint positions of the planar chain from the base at the origin."""
    points, x, y, a = [(0.0, 0.0)], 0.0, 0.0, 0.0
    for qi, li in zip(q, LINKS):
        a += qi
        x += li * math.cos(a)
        y += li * math.sin(a)
        points.append((x, y))
    return points


def jacobian_t_force(q, fx, fy):
    """Joint torques of a force at the tool (Jᵀ f)."""
    points = forward(q)
    tx, ty = points[-1]
    return [(tx - px) * fy - (ty - py) * fx for px, py in points[:-1]]


def reach_for(q, goal, iterations=200):
    """Joint angles near q whose tool tip is at goal (damped Jacobian-transpose steps)."""
    q = list(q)
    for _ in range(iterations):
        tx, ty = forward(q)[-1]
        ex, ey = goal[0] - tx, goal[1] - ty
        for j, t in enumerate(jacobian_t_force(q, ex, ey)):
            q[j] = min(max(q[j] + 0.8 * t, LIMITS[j][0]), LIMITS[j][1])
    return q


def episode(rng):
    """One episode: the readings of every sample and the scene state to render."""
    q = [rng.uniform(-0.6, 0.6), rng.uniform(0.3, 1.2), rng.uniform(-1.0, 1.0), rng.uniform(-0.5, 0.5)]
    qd = [0.0] * 4
    box = [rng.uniform(0.35, 0.55), rng.uniform(-0.25, 0.25), rng.uniform(-0.5, 0.5)]
    # a via-point trajectory: a new target every 12–30 samples, fast moves between them; every
    # other target reaches through the box (as placed at the start), so the arm pushes it
    targets, t = [], 0
    while t < SAMPLES * SUBSTEPS:
        hold = rng.randint(12, 30) * SUBSTEPS
        if len(targets) % 2:
            angle = math.atan2(box[1], box[0]) + rng.uniform(-0.6, 0.6)
            goal = (box[0] + 0.02 * math.cos(angle), box[1] + 0.02 * math.sin(angle))
            targets.append((t, reach_for(targets[-1][1], goal)))
        else:
            targets.append((t, [rng.uniform(-1.2, 1.2), rng.uniform(0.0, 1.6), rng.uniform(-1.4, 1.4), rng.uniform(-1.0, 1.0)]))
        t += hold
    rows, scenes, step = [], [], 0
    tau = [0.0] * 4
    for _ in range(SAMPLES):
        peak = 0.0  # the force channel reports the peak of its sample period
        for _ in range(SUBSTEPS):
            target = [v for start, v in targets if start <= step][-1]
            tx, ty = forward(q)[-1]
            # contact: the tool tip pushes the box out of its way, with a spring reaction
            dx, dy = tx - box[0], ty - box[1]
            dist = math.hypot(dx, dy)
            reach = BOX_HALF + 0.02
            fx = fy = 0.0
            if dist < reach and dist > 1e-6:
                depth = reach - dist
                force = 900.0 * depth
                peak = max(peak, force)
                fx, fy = force * dx / dist, force * dy / dist
                box[0] -= 0.6 * depth * dx / dist
                box[1] -= 0.6 * depth * dy / dist
                box[2] += 4.0 * depth * (dx * math.sin(box[2]) - dy * math.cos(box[2])) / dist
            contact = jacobian_t_force(q, fx, fy)
            for j in range(4):
                command = KP[j] * (target[j] - q[j]) - KD[j] * qd[j]
                tau[j] = max(-TORQUE_LIMIT, min(TORQUE_LIMIT, command))
                acc = (tau[j] + contact[j] - DAMPING[j] * qd[j]) / INERTIA[j]
                qd[j] += acc * DT
                q[j] += qd[j] * DT
                if not LIMITS[j][0] <= q[j] <= LIMITS[j][1]:
                    q[j] = min(max(q[j], LIMITS[j][0]), LIMITS[j][1])
                    qd[j] = 0.0
            step += 1
        tx, ty = forward(q)[-1]
        rows.append(q + qd + [tau[j] + contact[j] for j in range(4)] + [tx, ty, box[0], box[1], box[2], peak])
        scenes.append((list(q), list(box)))
    return rows, scenes


def to_pixel(x, y):
    """Top-down view of [-0.9, 0.9]²; row 0 is the far edge of the table."""
    return (x + 0.9) / 1.8 * W, (0.9 - y) / 1.8 * H


def render(q, box, light):
    """One RGB frame as a flat [3·H·W] list (channel-first), values 0–255."""
    frame = [0.0] * (3 * H * W)
    for r in range(H):
        for c in range(W):
            shade = light[0] + light[1] * (c / W) + light[2] * (r / H)
            grain = ((r * 7 + c * 13) % 5) * 2.0
            i = r * W + c
            frame[i] = 150 * shade + grain
            frame[H * W + i] = 130 * shade + grain
            frame[2 * H * W + i] = 100 * shade + grain

    def paint(pred, bounds, colour):
        r0, r1, c0, c1 = bounds
        for r in range(max(0, int(r0)), min(H, int(r1) + 2)):
            for c in range(max(0, int(c0)), min(W, int(c1) + 2)):
                if pred(c + 0.5, r + 0.5):
                    i = r * W + c
                    for ch in range(3):
                        frame[ch * H * W + i] = colour[ch]

    # the box: a rotated square
    bx, by = to_pixel(box[0], box[1])
    half = BOX_HALF / 1.8 * W
    cos_y, sin_y = math.cos(box[2]), math.sin(box[2])

    def in_box(px, py):
        u, v = px - bx, py - by
        return abs(u * cos_y + v * sin_y) <= half and abs(-u * sin_y + v * cos_y) <= half

    paint(in_box, (by - 1.5 * half, by + 1.5 * half, bx - 1.5 * half, bx + 1.5 * half), (200, 120, 30))
    # the links as thick segments, darker towards the base
    points = [to_pixel(x, y) for x, y in forward(q)]
    colours = [(40, 40, 60), (60, 70, 110), (80, 110, 160), (200, 200, 210)]
    for (x0, y0), (x1, y1), colour, width in zip(points, points[1:], colours, [2.2, 1.9, 1.6, 1.3]):
        dx, dy = x1 - x0, y1 - y0
        length2 = dx * dx + dy * dy + 1e-9

        def on_link(px, py, x0=x0, y0=y0, dx=dx, dy=dy, length2=length2, width=width):
            s = max(0.0, min(1.0, ((px - x0) * dx + (py - y0) * dy) / length2))
            return (px - x0 - s * dx) ** 2 + (py - y0 - s * dy) ** 2 <= width * width

        paint(on_link, (min(y0, y1) - 3, max(y0, y1) + 3, min(x0, x1) - 3, max(x0, x1) + 3), colour)
    return frame


def quantise(frame):
    return bytes(max(0, min(255, int(round(v)))) for v in frame)


def sensor_fault(kind, scene, rows, start, rng):
    """Applies an outside sensor fault to the readings from `start` on, in place. The scene
    names its columns' groups: `joints` angle columns, then as many velocities, then torques."""
    n = scene["joints"]
    angles, velocities, torques = range(0, n), range(n, 2 * n), range(2 * n, 3 * n)
    spans = [max(r[k] for r in rows) - min(r[k] for r in rows) + 1e-6 for k in range(len(scene["columns"]))]
    if kind == "hum":
        for k in rng.sample(range(len(scene["columns"])), 2):
            for i in range(start, len(rows)):
                rows[i][k] += 0.15 * spans[k] * math.sin(2 * math.pi * i / 7.0)
    elif kind == "sign_flip":
        k = angles[rng.randrange(n)]
        for i in range(start, len(rows)):
            rows[i][k] = -rows[i][k]
    elif kind == "swap":
        a, b = rng.sample(torques, 2)
        for i in range(start, len(rows)):
            rows[i][a], rows[i][b] = rows[i][b], rows[i][a]
    elif kind == "crosstalk":
        k = rng.randrange(n)
        v, t = velocities[k], torques[k]
        for i in range(start, len(rows)):
            rows[i][t] += rows[i][v] / 3.0 * spans[t] / spans[v]
    elif kind == "lowpass":
        state = list(rows[start])
        for i in range(start, len(rows)):
            for k in range(n, 3 * n):
                state[k] += (rows[i][k] - state[k]) / 4.0
                rows[i][k] = state[k]
    elif kind == "decimation":
        for i in range(start, len(rows)):
            if (i - start) % 4:
                rows[i] = list(rows[i - 1])
    else:
        raise ValueError(kind)


def camera_fault(kind, frame, i, start):
    """An outside camera fault on one float frame (sample i of an episode faulty from start)."""
    out = list(frame)
    plane = H * W
    if kind == "vignette":
        for r in range(H):
            for c in range(W):
                d = math.hypot((r - H / 2) / (H / 2), (c - W / 2) / (W / 2)) / math.sqrt(2)
                f = 1.0 - 0.65 * d * d
                for ch in range(3):
                    out[ch * plane + r * W + c] *= f
    elif kind == "channel_swap":
        out = frame[2 * plane:] + frame[plane:2 * plane] + frame[:plane]
    elif kind == "pixelate":
        for ch in range(3):
            for r0 in range(0, H, 8):
                for c0 in range(0, W, 8):
                    cells = [ch * plane + r * W + c for r in range(r0, r0 + 8) for c in range(c0, c0 + 8)]
                    mean = sum(frame[j] for j in cells) / 64.0
                    for j in cells:
                        out[j] = mean
    elif kind == "flicker_band":
        top = (4 * (i - start)) % H
        for r in range(top, min(H, top + 12)):
            for c in range(W):
                for ch in range(3):
                    out[ch * plane + r * W + c] += 70.0
    elif kind == "smudge":
        for r in range(H // 2):
            for c in range(W // 2):
                a = 0.7 * math.exp(-((r - 12) ** 2 + (c - 12) ** 2) / 180.0)
                for ch in range(3):
                    j = ch * plane + r * W + c
                    out[j] = (1 - a) * frame[j] + a * 170.0
    elif kind == "shift":
        for ch in range(3):
            for r in range(H):
                for c in range(W):
                    out[ch * plane + r * W + c] = frame[ch * plane + max(0, r - 6) * W + max(0, c - 6)]
    else:
        raise ValueError(kind)
    return out


def npy(dtype, shape, data):
    """One .npy member (format 1.0, little-endian, C order)."""
    dims = ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "")
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (dtype, dims)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data


def write_npz(path, arrays):
    # entries dated 1980-01-01 (zip's epoch), so that the same seed writes the same bytes
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for key, (dtype, shape, data) in arrays.items():
            z.writestr(zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0)), npy(dtype, shape, data), zipfile.ZIP_DEFLATED)


def floats(values):
    a = array.array("f", values)
    if struct.pack("=f", 1.0) != struct.pack("<f", 1.0):
        a.byteswap()
    return a.tobytes()


def ints(values):
    a = array.array("i", values)
    if struct.pack("=i", 1) != struct.pack("<i", 1):
        a.byteswap()
    return a.tobytes()


def simulate(scene, episodes, rng):
    """Readings, float frames and episode ids of `episodes` episodes of a scene, each under a
    lighting of its own: a level and a ramp to the right and bottom edges."""
    (low, high), ramp = scene["lighting"]
    rows, frames, ids = [], [], []
    for e in range(episodes):
        light = (rng.uniform(low, high), rng.uniform(-ramp, ramp), rng.uniform(-ramp, ramp))
        readings, states = scene["episode"](rng)
        rows.extend(readings)
        frames.extend(scene["render"](*state, light) for state in states)
        ids.extend([e] * SAMPLES)
    return rows, frames, ids


# --- the welding cell (`--scene weld`) -----------------------------------------------------
#
# A three-joint planar arm carries a MIG torch along a straight seam between two plates, seen
# from above: it approaches the seam's start, strikes the arc, welds along the seam with a
# weave, puts the arc out and retracts. The welding source is a constant-voltage one: the
# current follows the wire feed and falls as the torch-to-work distance grows, the voltage rises
# with the arc's length, and short circuits (a drop bridging the gap) pull the voltage down and
# the current up for a reading.

WELD_LINKS = [0.42, 0.34, 0.14]
WELD_BASE = (0.0, -0.62)
WELD_INERTIA = [0.55, 0.22, 0.04]
WELD_DAMPING = [1.0, 0.6, 0.1]
WELD_KP = [140.0, 90.0, 25.0]
WELD_KD = [12.0, 7.0, 1.2]
WELD_TORQUE_LIMIT = 30.0
WELD_LIMITS = [(-0.4, 3.5), (-2.6, 2.6), (-2.6, 2.6)]
WELD_COLUMNS = (
    [(f"q{j}", "rad") for j in range(3)]
    + [(f"qd{j}", "rad/s") for j in range(3)]
    + [(f"tau{j}", "N*m") for j in range(3)]
    + [("torch_x", "m"), ("torch_y", "m"), ("ctwd", "mm"), ("current", "A"), ("voltage", "V"),
       ("wire_feed", "m/min"), ("feeder_current", "A"), ("gas_flow", "l/min"), ("temperature", "degC")]
)


def weld_forward(q):
    """Joint positions of the torch arm from its base."""
    points, (x, y), a = [WELD_BASE], WELD_BASE, 0.0
    for qi, li in zip(q, WELD_LINKS):
        a += qi
        x += li * math.cos(a)
        y += li * math.sin(a)
        points.append((x, y))
    return points


def weld_reach(q, goal, iterations=40):
    """Joint angles near q whose torch tip is at goal (damped Jacobian-transpose steps)."""
    q = list(q)
    for _ in range(iterations):
        points = weld_forward(q)
        tx, ty = points[-1]
        ex, ey = goal[0] - tx, goal[1] - ty
        for j in range(3):
            px, py = points[j]
            t = (tx - px) * ey - (ty - py) * ex
            q[j] = min(max(q[j] + 1.5 * t, WELD_LIMITS[j][0]), WELD_LIMITS[j][1])
    return q


def weld_episode(rng):
    """One welding job: the readings of every sample and the scene state to render."""
    angle = rng.uniform(-0.5, 0.5)
    length = rng.uniform(0.40, 0.60)
    centre = (rng.uniform(-0.12, 0.12), rng.uniform(0.05, 0.25))
    a = (centre[0] - 0.5 * length * math.cos(angle), centre[1] - 0.5 * length * math.sin(angle))
    b = (centre[0] + 0.5 * length * math.cos(angle), centre[1] + 0.5 * length * math.sin(angle))
    home = (rng.uniform(-0.25, 0.25), rng.uniform(-0.2, -0.05))
    strike, out = rng.randint(18, 26), rng.randint(74, 82)
    feed = rng.uniform(5.0, 8.0)  # the job's wire feed set-point, m/min
    weave, period = rng.uniform(0.004, 0.008), rng.uniform(6.0, 10.0)
    warp, warp_phase = rng.uniform(0.5, 2.0), rng.uniform(0, 2 * math.pi)

    def reference(i):
        """The torch's planned (x, y) and height above the work (mm) at sample i."""
        if i < strike:
            s = (i / strike) ** 0.7
            return (home[0] + s * (a[0] - home[0]), home[1] + s * (a[1] - home[1])), 60.0 - 48.0 * s
        if i <= out:
            s = (i - strike) / (out - strike)
            w = weave * math.sin(2 * math.pi * (i - strike) / period)
            x = a[0] + s * (b[0] - a[0]) - w * math.sin(angle)
            y = a[1] + s * (b[1] - a[1]) + w * math.cos(angle)
            return (x, y), 12.0 + warp * math.sin(2 * math.pi * s + warp_phase)
        s = (i - out) / (SAMPLES - 1 - out)
        return (b[0] + s * (home[0] - b[0]), b[1] + s * (home[1] - b[1])), 12.0 + 48.0 * s

    q = weld_reach([1.2, 0.8, 0.4], home, iterations=400)
    qd = [0.0] * 3
    tau = [0.0] * 3
    gas, temperature, heat = 0.0, rng.uniform(20.0, 30.0), 0.0
    ambient = temperature
    rows, scenes, bead = [], [], []
    for i in range(SAMPLES):
        goal, height = reference(i)
        target = weld_reach(q, goal)
        for _ in range(SUBSTEPS):
            for j in range(3):
                command = WELD_KP[j] * (target[j] - q[j]) - WELD_KD[j] * qd[j]
                tau[j] = max(-WELD_TORQUE_LIMIT, min(WELD_TORQUE_LIMIT, command))
                qd[j] += (tau[j] - WELD_DAMPING[j] * qd[j]) / WELD_INERTIA[j] * DT
                q[j] += qd[j] * DT
                if not WELD_LIMITS[j][0] <= q[j] <= WELD_LIMITS[j][1]:
                    q[j] = min(max(q[j], WELD_LIMITS[j][0]), WELD_LIMITS[j][1])
                    qd[j] = 0.0
        tx, ty = weld_forward(q)[-1]
        ctwd = height + rng.gauss(0.0, 0.15)
        arc = strike <= i <= out
        wire = feed if arc else 0.0
        if arc:
            current = 22.0 * wire + 40.0 - 6.0 * (ctwd - 12.0) + rng.gauss(0.0, 4.0)
            voltage = 14.0 + 0.05 * current + 0.9 * (ctwd - 10.0) + rng.gauss(0.0, 0.3)
            if rng.random() < 0.08:  # a short circuit
                current += 60.0
                voltage = rng.uniform(6.0, 10.0)
            bead.append((tx, ty, i))
        else:
            current, voltage = 0.0, 0.0
        power = current * voltage
        # gas: pre-flow from five readings before the arc, post-flow for eight after it
        valve = strike - 5 <= i <= out + 8
        gas += ((15.0 if valve else 0.0) - gas) / 2.5
        # the pyrometer at the torch sees the pool while the arc burns, the cooling bead after
        heat += 0.05 * (0.09 * power - 0.8 * heat)
        temperature = ambient + heat
        feeder = 0.4 + 0.28 * wire + rng.gauss(0.0, 0.02)
        rows.append(q + qd + tau + [tx, ty, ctwd, current, voltage, wire, feeder, gas + rng.gauss(0.0, 0.1), temperature])
        scenes.append((list(q), list(bead), current, (a, b), i))
    return rows, scenes


def weld_render(q, bead, current, seam, now, light):
    """One RGB frame of the welding cell at sample `now` as a flat [3·H·W] list (channel-first),
    0–255."""
    frame = [0.0] * (3 * H * W)
    (ax, ay), (bx, by) = to_pixel(*seam[0]), to_pixel(*seam[1])
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy + 1e-9
    for r in range(H):
        for c in range(W):
            shade = light[0] + light[1] * (c / W) + light[2] * (r / H)
            i = r * W + c
            # the plates (brushed steel) and the seam's gap between them
            px, py = c + 0.5, r + 0.5
            s = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / length2))
            gap = math.hypot(px - ax - s * dx, py - ay - s * dy)
            brushed = ((c * 3 + r) % 7) * 1.5
            base = 55.0 if gap < 0.8 else 140.0 + brushed
            frame[i] = base * shade
            frame[H * W + i] = (base + 4.0) * shade
            frame[2 * H * W + i] = (base + 10.0) * shade
    plane = H * W

    def blend(cx, cy, radius, colour, strength):
        for r in range(max(0, int(cy - radius - 1)), min(H, int(cy + radius + 2))):
            for c in range(max(0, int(cx - radius - 1)), min(W, int(cx + radius + 2))):
                d = math.hypot(c + 0.5 - cx, r + 0.5 - cy)
                if d <= radius:
                    a = strength * (1.0 - d / (radius + 1e-9)) ** 0.5
                    for ch in range(3):
                        j = ch * plane + r * W + c
                        frame[j] = (1 - a) * frame[j] + a * colour[ch]

    # the bead: silver where it has cooled, orange to yellow the nearer the pool
    for x, y, laid in bead:
        age = now - laid
        glow = math.exp(-age / 6.0)
        colour = (170 + 85 * glow, 165 + 40 * glow - 60 * glow * glow, 160 - 120 * glow)
        px, py = to_pixel(x, y)
        blend(px, py, 1.6, colour, 0.9)
    # the arm, then the torch, then the arc's glow over all of it
    points = [to_pixel(x, y) for x, y in weld_forward(q)]
    for (x0, y0), (x1, y1), colour, width in zip(points, points[1:], [(60, 50, 40), (90, 70, 40), (50, 50, 55)], [2.4, 2.0, 1.5]):
        ex, ey = x1 - x0, y1 - y0
        l2 = ex * ex + ey * ey + 1e-9
        for r in range(max(0, int(min(y0, y1) - 3)), min(H, int(max(y0, y1) + 4))):
            for c in range(max(0, int(min(x0, x1) - 3)), min(W, int(max(x0, x1) + 4))):
                s = max(0.0, min(1.0, ((c + 0.5 - x0) * ex + (r + 0.5 - y0) * ey) / l2))
                if (c + 0.5 - x0 - s * ex) ** 2 + (r + 0.5 - y0 - s * ey) ** 2 <= width * width:
                    for ch in range(3):
                        frame[ch * plane + r * W + c] = colour[ch]
    tx, ty = points[-1]
    blend(tx, ty, 2.5, (25, 25, 30), 1.0)
    if current > 0:
        blend(tx, ty, 1.5 + current / 45.0, (255, 250, 225), 1.0)
    return frame


# what each scene writes: its training file, its columns, its episodes, renderer and lighting
# (the range of the level, the largest ramp)
SCENES = {
    "push": {"file": "pushing-arm.npz", "note": "a four-joint arm pushing a box, raw units",
             "columns": COLUMNS, "joints": 4, "episode": episode, "render": render,
             "lighting": ((0.85, 1.1), 0.1)},
    "weld": {"file": "welding-cell.npz", "note": "a three-joint arm MIG-welding a seam, raw units",
             "columns": WELD_COLUMNS, "joints": 3, "episode": weld_episode, "render": weld_render,
             "lighting": ((0.8, 1.1), 0.12)},
}


def contract(scene, rows, frames, ids, extra=None):
    n = len(rows)
    arrays = {
        "camera": ("|u1", (n, 3, H, W), b"".join(quantise(f) for f in frames)),
        "sensor": ("<f4", (n, len(scene["columns"])), floats(v for r in rows for v in r)),
        "episode": ("<i4", (n,), ints(ids)),
        "t": ("<f4", (n,), floats((i % SAMPLES) * 0.05 for i in range(n))),
    }
    arrays.update(extra or {})
    return arrays


def sidecar(scene, path, note):
    meta = {"sensor_columns": [{"name": n, "unit": u} for n, u in scene["columns"]], "source": "tools/outside_data.py", "note": note}
    with open(os.path.splitext(path)[0] + ".json", "w") as f:
        json.dump(meta, f, indent=1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="data/outside")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episodes", type=int, default=40)
    p.add_argument("--fault-episodes", type=int, default=10)
    p.add_argument("--scene", choices=sorted(SCENES), default="push",
                   help="push: the four-joint arm pushing a box; weld: the three-joint arm welding a seam")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    scene = SCENES[a.scene]

    rows, frames, ids = simulate(scene, a.episodes, random.Random(a.seed))
    path = os.path.join(a.out, scene["file"])
    write_npz(path, contract(scene, rows, frames, ids))
    sidecar(scene, path, scene["note"])
    print(f"{path}: {len(rows)} samples")

    rows, frames, ids = simulate(scene, a.episodes, random.Random(a.seed + 2_000_003))
    path = os.path.join(a.out, "outside-clean.npz")
    zero = floats([0.0] * len(rows))
    n = len(rows)
    write_npz(path, contract(scene, rows, frames, ids, {"fault_camera": ("<f4", (n,), zero), "fault_sensor": ("<f4", (n,), zero)}))
    sidecar(scene, path, "new clean episodes")
    print(f"{path}: {n} samples, no fault")

    rng = random.Random(a.seed + 1_000_003)
    rows, frames, ids = simulate(scene, a.fault_episodes, rng)
    start_of = [int(0.3 * SAMPLES)] * a.fault_episodes
    spans = [max(r[k] for r in rows) - min(r[k] for r in rows) + 1e-9 for k in range(len(scene["columns"]))]
    for kind in SENSOR_KINDS + CAMERA_KINDS:
        faulty_rows = [list(r) for r in rows]
        faulty_frames = list(frames)
        level = [0.0] * len(rows)
        for e in range(a.fault_episodes):
            lo, start = e * SAMPLES, start_of[e]
            for i in range(start, SAMPLES):
                level[lo + i] = 1.0
            if kind in SENSOR_KINDS:
                episode_rows = faulty_rows[lo:lo + SAMPLES]
                sensor_fault(kind, scene, episode_rows, start, random.Random(f"{a.seed}/{kind}/{e}"))
                faulty_rows[lo:lo + SAMPLES] = episode_rows
                # a sensor reading's level is how much the fault changed it: the largest change
                # of any column as a share of the column's range over these episodes (0 where
                # it changed nothing), so that `eval stream --min-level` can leave out changes
                # too small to be seen — a third of a velocity leaks into a torque only while
                # the joint moves
                for i in range(start, SAMPLES):
                    level[lo + i] = max(abs(f - c) / s for f, c, s in zip(faulty_rows[lo + i], rows[lo + i], spans))
            else:
                for i in range(start, SAMPLES):
                    faulty_frames[lo + i] = camera_fault(kind, frames[lo + i], i, start)
        zero = floats([0.0] * len(rows))
        camera_level, sensor_level = (zero, floats(level)) if kind in SENSOR_KINDS else (floats(level), zero)
        out = os.path.join(a.out, f"outside-{kind}.npz")
        n = len(rows)
        write_npz(out, contract(scene, faulty_rows, faulty_frames, ids, {
            "fault_camera": ("<f4", (n,), camera_level),
            "fault_sensor": ("<f4", (n,), sensor_level),
        }))
        sidecar(scene, out, f"outside fault '{kind}' from 30 % of every episode")
        print(f"{out}: {kind}")


if __name__ == "__main__":
    main()
