//! A small ray-casting renderer: perspective camera, capsule links, boxes, a floor, one
//! directional light with shadows, ambient light, and emissive glows (a welding arc, sparks).

use crate::arm::Pose;

/// A point or direction in metres, z up.
pub type V3 = [f64; 3];

fn add(a: V3, b: V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn mul(a: V3, k: f64) -> V3 {
    [a[0] * k, a[1] * k, a[2] * k]
}
fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn cross(a: V3, b: V3) -> V3 {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
fn normalize(a: V3) -> V3 {
    mul(a, 1.0 / dot(a, a).sqrt())
}

/// A pinhole camera.
#[derive(Debug, Clone, Copy)]
pub struct View {
    /// Camera position, metres.
    pub eye: V3,
    /// Point the camera looks at.
    pub target: V3,
    /// Vertical field of view, degrees.
    pub fov_deg: f64,
}

impl Default for View {
    /// Looks at the arm's workspace from the front right, slightly above.
    fn default() -> Self {
        Self { eye: [1.6, -1.15, 1.05], target: [0.4, 0.0, 0.15], fov_deg: 38.0 }
    }
}

/// What is in the cell at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Scene {
    /// The arm's joint points.
    pub arm: Pose,
    /// Centre of the object (a cube resting on the table).
    pub object: V3,
    /// Half the object's side, metres.
    pub object_half: f64,
}

/// A surface the renderer knows.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// A segment from `a` to `b` swept by a sphere of radius `r` (a link, a torch, a bead).
    Capsule {
        /// One end.
        a: V3,
        /// The other end.
        b: V3,
        /// Radius, metres.
        r: f64,
    },
    /// An axis-aligned box.
    Cuboid {
        /// Lowest corner.
        lo: V3,
        /// Highest corner.
        hi: V3,
    },
    /// The horizontal plane at height `z`.
    Floor {
        /// Height, metres.
        z: f64,
    },
}

/// A shape with a diffuse colour (linear RGB in [0, 1]).
#[derive(Debug, Clone, Copy)]
pub struct Solid {
    /// The surface.
    pub shape: Shape,
    /// Diffuse colour.
    pub albedo: V3,
}

/// Light emitted around a point, added to what the ray sees when the point is not hidden:
/// `colour · intensity · exp(−(d / radius)²)` for a ray passing at distance d.
#[derive(Debug, Clone, Copy)]
pub struct Glow {
    /// Where the light comes from.
    pub centre: V3,
    /// Size of the halo, metres.
    pub radius: f64,
    /// Colour (linear RGB).
    pub colour: V3,
    /// Brightness at the centre.
    pub intensity: f64,
}

const LINK_RADII: [f64; 3] = [0.05, 0.042, 0.032];
const LINK_COLOURS: [V3; 3] = [[0.95, 0.55, 0.1], [0.15, 0.4, 0.9], [0.2, 0.75, 0.3]];
const TABLE_LO: V3 = [-0.35, -0.85, -0.05];
const TABLE_HI: V3 = [1.1, 0.85, 0.0];

/// The floor and the table every cell stands on.
pub fn room() -> Vec<Solid> {
    vec![
        Solid { shape: Shape::Floor { z: -0.75 }, albedo: [0.45, 0.45, 0.48] },
        Solid { shape: Shape::Cuboid { lo: TABLE_LO, hi: TABLE_HI }, albedo: [0.62, 0.48, 0.32] },
    ]
}

/// An arm's pedestal, three links in `colours` and a tool ball in `tool`.
pub fn arm(pose: &Pose, colours: [V3; 3], tool: V3) -> Vec<Solid> {
    let p = &pose.points;
    let mut s = vec![
        Solid { shape: Shape::Capsule { a: p[0], b: p[1], r: 0.07 }, albedo: [0.25, 0.25, 0.28] },
        Solid { shape: Shape::Capsule { a: p[4], b: p[4], r: 0.035 }, albedo: tool },
    ];
    for i in 0..3 {
        s.push(Solid { shape: Shape::Capsule { a: p[i + 1], b: p[i + 2], r: LINK_RADII[i] }, albedo: colours[i] });
    }
    s
}

fn solids(scene: &Scene) -> Vec<Solid> {
    let mut s = room();
    s.extend(arm(&scene.arm, LINK_COLOURS, [0.95, 0.9, 0.2]));
    let h = scene.object_half;
    let c = scene.object;
    s.push(Solid {
        shape: Shape::Cuboid { lo: [c[0] - h, c[1] - h, c[2] - h], hi: [c[0] + h, c[1] + h, c[2] + h] },
        albedo: [0.85, 0.12, 0.12],
    });
    s
}

/// Distance along the ray and surface normal of the nearest hit in front of the origin.
fn intersect(shape: &Shape, ro: V3, rd: V3) -> Option<(f64, V3)> {
    const EPS: f64 = 1e-6;
    match *shape {
        Shape::Floor { z } => {
            let t = (z - ro[2]) / rd[2];
            (rd[2].abs() > EPS && t > EPS).then_some((t, [0.0, 0.0, 1.0]))
        }
        Shape::Cuboid { lo, hi } => {
            let (mut tmin, mut tmax, mut axis) = (f64::NEG_INFINITY, f64::INFINITY, 0);
            for k in 0..3 {
                if rd[k].abs() < 1e-12 {
                    if ro[k] < lo[k] || ro[k] > hi[k] {
                        return None;
                    }
                    continue;
                }
                let (t1, t2) = ((lo[k] - ro[k]) / rd[k], (hi[k] - ro[k]) / rd[k]);
                let (near, far) = if t1 < t2 { (t1, t2) } else { (t2, t1) };
                if near > tmin {
                    tmin = near;
                    axis = k;
                }
                tmax = tmax.min(far);
            }
            if tmin > tmax || tmin <= EPS {
                return None;
            }
            let mut n = [0.0; 3];
            n[axis] = -rd[axis].signum();
            Some((tmin, n))
        }
        Shape::Capsule { a, b, r } => {
            let ba = sub(b, a);
            let oa = sub(ro, a);
            let baba = dot(ba, ba);
            let t = if baba < 1e-12 {
                sphere(oa, rd, r)?
            } else {
                let (bard, baoa, rdoa, oaoa) = (dot(ba, rd), dot(ba, oa), dot(rd, oa), dot(oa, oa));
                let qa = baba - bard * bard;
                let qb = baba * rdoa - baoa * bard;
                let qc = baba * oaoa - baoa * baoa - r * r * baba;
                let h = qb * qb - qa * qc;
                let body = (h >= 0.0 && qa > 1e-12).then(|| (-qb - h.sqrt()) / qa);
                match body {
                    Some(t) if (0.0..baba).contains(&(baoa + t * bard)) => t,
                    _ => {
                        let cap = if body.map(|t| baoa + t * bard <= 0.0).unwrap_or(baoa <= 0.0) { a } else { b };
                        sphere(sub(ro, cap), rd, r)?
                    }
                }
            };
            if t <= EPS {
                return None;
            }
            let pos = add(ro, mul(rd, t));
            let k = if baba < 1e-12 { 0.0 } else { (dot(sub(pos, a), ba) / baba).clamp(0.0, 1.0) };
            Some((t, normalize(sub(pos, add(a, mul(ba, k))))))
        }
    }
}

fn sphere(oc: V3, rd: V3, r: f64) -> Option<f64> {
    let b = dot(rd, oc);
    let h = b * b - (dot(oc, oc) - r * r);
    (h >= 0.0).then(|| -b - h.sqrt())
}

fn nearest(solids: &[Solid], ro: V3, rd: V3) -> Option<(f64, V3, V3)> {
    solids
        .iter()
        .filter_map(|s| intersect(&s.shape, ro, rd).map(|(t, n)| (t, n, s.albedo)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

/// Renders the single-arm scene into `out` as uint8 [3, H, W], row 0 at the top.
pub fn render(scene: &Scene, view: &View, height: usize, width: usize, out: &mut [u8]) {
    render_solids(&solids(scene), &[], view, height, width, out);
}

/// How much of `glow` a ray from `ro` along unit `rd` sees when the first surface is at `hit`.
fn glow_seen(glow: &Glow, ro: V3, rd: V3, hit: f64) -> f64 {
    let along = dot(sub(glow.centre, ro), rd);
    if along <= 0.0 || along > hit + glow.radius {
        return 0.0;
    }
    let closest = add(ro, mul(rd, along));
    let d2 = dot(sub(glow.centre, closest), sub(glow.centre, closest));
    glow.intensity * (-d2 / (glow.radius * glow.radius)).exp()
}

/// Renders solids and glows into `out` as uint8 [3, H, W], row 0 at the top, with 2×2
/// supersampling.
pub fn render_solids(solids: &[Solid], glows: &[Glow], view: &View, height: usize, width: usize, out: &mut [u8]) {
    let forward = normalize(sub(view.target, view.eye));
    let right = normalize(cross(forward, [0.0, 0.0, 1.0]));
    let up = cross(right, forward);
    let half_h = (view.fov_deg.to_radians() / 2.0).tan();
    let half_w = half_h * width as f64 / height as f64;
    let light = normalize([-0.35, 0.45, 1.0]);
    let plane = height * width;
    const SS: usize = 2;
    for row in 0..height {
        for col in 0..width {
            let mut rgb = [0.0; 3];
            for sy in 0..SS {
                for sx in 0..SS {
                    let u = ((col as f64 + (sx as f64 + 0.5) / SS as f64) / width as f64 * 2.0 - 1.0) * half_w;
                    let v = (1.0 - (row as f64 + (sy as f64 + 0.5) / SS as f64) / height as f64 * 2.0) * half_h;
                    let rd = normalize(add(forward, add(mul(right, u), mul(up, v))));
                    let hit = nearest(solids, view.eye, rd);
                    let mut c = match hit {
                        None => [0.78 - 0.2 * v, 0.82 - 0.2 * v, 0.88 - 0.1 * v],
                        Some((t, n, albedo)) => {
                            let pos = add(view.eye, mul(rd, t));
                            let lambert = dot(n, light).max(0.0);
                            let lit = if lambert > 0.0 && nearest(solids, add(pos, mul(n, 1e-4)), light).is_none() {
                                lambert
                            } else {
                                0.0
                            };
                            mul(albedo, 0.3 + 0.7 * lit)
                        }
                    };
                    let depth = hit.map_or(f64::INFINITY, |h| h.0);
                    for g in glows {
                        let seen = glow_seen(g, view.eye, rd, depth);
                        c = add(c, mul(g.colour, seen));
                    }
                    for k in 0..3 {
                        rgb[k] += c[k];
                    }
                }
            }
            for (k, value) in rgb.iter().enumerate() {
                let linear = (value / (SS * SS) as f64).clamp(0.0, 1.0);
                out[k * plane + row * width + col] = (linear.powf(1.0 / 2.2) * 255.0).round() as u8;
            }
        }
    }
}
