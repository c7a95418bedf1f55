//! A four-joint arm: base yaw, then shoulder, elbow and wrist pitch in one vertical plane.
//! Forward and inverse kinematics, and joint torques from a lumped-mass dynamics model.

/// Height of the shoulder above the table, metres.
pub const SHOULDER_HEIGHT: f64 = 0.30;
/// Upper arm, forearm and hand lengths, metres.
pub const LINKS: [f64; 3] = [0.45, 0.40, 0.15];
/// Mass of each link, kg, lumped at its middle, plus the payload at the tool.
const LINK_MASS: [f64; 3] = [4.0, 2.5, 1.0];
const TOOL_MASS: f64 = 0.5;
const GRAVITY: f64 = 9.81;
/// Viscous friction per joint, N·m·s/rad.
const DAMPING: f64 = 2.0;
/// Rotor inertia seen at each joint, kg·m².
const ROTOR: f64 = 0.05;

/// Number of joints.
pub const JOINTS: usize = 4;

/// Joint angles, radians: base yaw, shoulder, elbow, wrist.
pub type Joints = [f64; JOINTS];

/// Points of the arm in the world frame (z up, table top at z = 0).
#[derive(Debug, Clone, Copy)]
pub struct Pose {
    /// Base, shoulder, elbow, wrist and tool points.
    pub points: [[f64; 3]; 5],
}

impl Pose {
    /// The tool (end-effector) position.
    pub fn tool(&self) -> [f64; 3] {
        self.points[4]
    }

    /// The same pose for an arm whose base stands at `base` instead of the origin.
    pub fn translated(&self, base: [f64; 3]) -> Pose {
        Pose { points: self.points.map(|p| [p[0] + base[0], p[1] + base[1], p[2] + base[2]]) }
    }
}

/// Forward kinematics.
pub fn forward(q: &Joints) -> Pose {
    let (c0, s0) = (q[0].cos(), q[0].sin());
    let mut points = [[0.0; 3]; 5];
    points[1] = [0.0, 0.0, SHOULDER_HEIGHT];
    let mut pitch = 0.0;
    for i in 0..3 {
        pitch += q[i + 1];
        let p = points[i + 1];
        let reach = LINKS[i] * pitch.cos();
        points[i + 2] = [p[0] + reach * c0, p[1] + reach * s0, p[2] + LINKS[i] * pitch.sin()];
    }
    Pose { points }
}

/// Inverse kinematics for a tool position and a hand pitch `phi` (−π/2 points straight down),
/// elbow up. Targets out of reach are pulled onto the reachable sphere.
pub fn inverse(target: [f64; 3], phi: f64) -> Joints {
    let yaw = target[1].atan2(target[0]);
    let r = target[0].hypot(target[1]);
    let wr = r - LINKS[2] * phi.cos();
    let wz = target[2] - SHOULDER_HEIGHT - LINKS[2] * phi.sin();
    let (l1, l2) = (LINKS[0], LINKS[1]);
    let d2 = (wr * wr + wz * wz).clamp((l1 - l2).powi(2) + 1e-6, (l1 + l2).powi(2) - 1e-6);
    let elbow = -((d2 - l1 * l1 - l2 * l2) / (2.0 * l1 * l2)).clamp(-1.0, 1.0).acos();
    let shoulder = wz.atan2(wr) - (l2 * elbow.sin()).atan2(l1 + l2 * elbow.cos());
    [yaw, shoulder, elbow, phi - shoulder - elbow]
}

/// Joint torques, N·m, for angles, velocities and accelerations: lumped-mass inertia about each
/// axis, gravity on the pitch joints, viscous friction. Cross-coupling terms are left out: the
/// signals need the right shape and causes, not a full rigid-body model.
pub fn torques(q: &Joints, qd: &Joints, qdd: &Joints) -> Joints {
    let pose = forward(q);
    let mut masses: Vec<([f64; 3], f64)> = (0..3)
        .map(|i| {
            let (a, b) = (pose.points[i + 1], pose.points[i + 2]);
            ([(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0, (a[2] + b[2]) / 2.0], LINK_MASS[i])
        })
        .collect();
    masses.push((pose.tool(), TOOL_MASS));
    let mut tau = [0.0; JOINTS];
    // base yaw: inertia from horizontal distances to the z axis, no gravity
    let inertia0: f64 = masses.iter().map(|(p, m)| m * (p[0] * p[0] + p[1] * p[1])).sum();
    tau[0] = (inertia0 + ROTOR) * qdd[0] + DAMPING * qd[0];
    // pitch joint j carries every mass beyond the joint point j
    for j in 1..JOINTS {
        let axis = pose.points[j];
        let (mut inertia, mut grav) = (ROTOR, 0.0);
        for (k, (p, m)) in masses.iter().enumerate() {
            if k + 1 < j {
                continue;
            }
            let horizontal = (p[0] - axis[0]).hypot(p[1] - axis[1]);
            let dz = p[2] - axis[2];
            inertia += m * (horizontal * horizontal + dz * dz);
            grav += m * GRAVITY * horizontal;
        }
        tau[j] = inertia * qdd[j] + grav + DAMPING * qd[j];
    }
    tau
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn straight_arm_reaches_its_full_length() {
        let p = forward(&[0.0, 0.0, 0.0, 0.0]);
        assert!((p.tool()[0] - 1.0).abs() < 1e-12);
        assert!((p.tool()[2] - SHOULDER_HEIGHT).abs() < 1e-12);
        let up = forward(&[1.0, std::f64::consts::FRAC_PI_2, 0.0, 0.0]);
        assert!(up.tool()[0].abs() < 1e-9 && (up.tool()[2] - 1.3).abs() < 1e-9);
    }

    #[test]
    fn inverse_kinematics_inverts_forward() {
        for target in [[0.5, 0.2, 0.1], [0.3, -0.4, 0.25], [0.6, 0.0, 0.05]] {
            let q = inverse(target, -std::f64::consts::FRAC_PI_2);
            let got = forward(&q).tool();
            for k in 0..3 {
                assert!((got[k] - target[k]).abs() < 1e-9, "{target:?} -> {got:?}");
            }
        }
    }

    #[test]
    fn gravity_loads_the_shoulder_most_when_the_arm_is_horizontal() {
        let zero = [0.0; JOINTS];
        let flat = torques(&[0.0, 0.0, 0.0, 0.0], &zero, &zero);
        let up = torques(&[0.0, std::f64::consts::FRAC_PI_2, 0.0, 0.0], &zero, &zero);
        assert!(flat[1] > 10.0, "{flat:?}");
        assert!(up[1].abs() < 1e-9 && flat[0] == 0.0);
        assert!(flat[1] > flat[2] && flat[2] > flat[3]);
    }
}
