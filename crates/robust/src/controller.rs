//! ModalImmune's information-gain controller (`docs/methods/modalimmune.md`, b.3): a bandit
//! over {none, camera, sensor} that picks which modality to collapse in a training step, scored
//! by the squared leave-one-out loss difference on a control batch (the paper's Eq. 16).

use rand::Rng;
use serde::{Deserialize, Serialize};

/// An arm of the controller: collapse nothing, or one modality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    /// Train on both modalities.
    None,
    /// Collapse the camera.
    Camera,
    /// Collapse the sensor.
    Sensor,
}

impl Arm {
    /// The modality arms, in index order (camera 0, sensor 1).
    pub const MODALITIES: [Arm; 2] = [Arm::Camera, Arm::Sensor];
}

/// How the controller explores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControllerConfig {
    /// UCB exploration weight β.
    pub exploration: f64,
    /// Probability of the "none" arm in a step (keeps clean-data competence).
    pub none_share: f64,
    /// EMA factor of the information-gain scores (weight of the old value).
    pub decay: f64,
    /// Pick modalities uniformly instead (plain modality dropout: the ablation).
    pub uniform: bool,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self { exploration: 0.5, none_share: 0.3, decay: 0.9, uniform: false }
    }
}

/// The controller's state; every choice and score update is kept for the log.
#[derive(Debug, Clone, Serialize)]
pub struct Controller {
    cfg: ControllerConfig,
    /// EMA of the squared leave-one-out differences, per modality.
    pub gain: [f64; 2],
    /// The last signed differences L(without m) − L(all), per modality (> 0: the model relies
    /// on m).
    pub last_delta: [f64; 2],
    /// Times each modality arm was chosen.
    pub pulls: [u64; 2],
    /// Times "none" was chosen.
    pub none_pulls: u64,
    steps: u64,
}

impl Controller {
    /// A controller with no scores yet.
    pub fn new(cfg: ControllerConfig) -> Self {
        Self { cfg, gain: [0.0; 2], last_delta: [0.0; 2], pulls: [0; 2], none_pulls: 0, steps: 0 }
    }

    /// Records the control batch's task losses with all modalities and without each one.
    pub fn observe(&mut self, loss_all: f64, loss_without: [f64; 2]) {
        for ((without, last), gain) in loss_without.iter().zip(&mut self.last_delta).zip(&mut self.gain) {
            let delta = without - loss_all;
            *last = delta;
            *gain = self.cfg.decay * *gain + (1.0 - self.cfg.decay) * delta * delta;
        }
    }

    /// The arm of the next step: "none" with its share, else the modality with the highest
    /// UCB score Ĝ_m / max Ĝ + β·sqrt(ln t / (n_m + 1)) (or a uniform draw).
    pub fn choose(&mut self, rng: &mut impl Rng) -> Arm {
        self.steps += 1;
        if rng.random::<f64>() < self.cfg.none_share {
            self.none_pulls += 1;
            return Arm::None;
        }
        let m = if self.cfg.uniform {
            usize::from(rng.random::<bool>())
        } else {
            let top = self.gain[0].max(self.gain[1]);
            let t = (self.steps as f64).ln().max(0.0);
            let score = |m: usize| {
                let g = if top > 0.0 { self.gain[m] / top } else { 0.0 };
                g + self.cfg.exploration * (t / (self.pulls[m] as f64 + 1.0)).sqrt()
            };
            if score(1) > score(0) {
                1
            } else {
                0
            }
        };
        self.pulls[m] += 1;
        Arm::MODALITIES[m]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn favours_the_modality_the_model_relies_on_but_keeps_exploring() {
        let mut c = Controller::new(ControllerConfig::default());
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..2000 {
            // removing the sensor costs 1.0, removing the camera 0.1
            c.observe(0.5, [0.6, 1.5]);
            c.choose(&mut rng);
        }
        assert!(c.last_delta[1] > c.last_delta[0] && c.gain[1] > 50.0 * c.gain[0]);
        assert!(c.pulls[1] > 3 * c.pulls[0], "{:?}", c.pulls);
        assert!(c.pulls[0] > 0, "the other arm is still explored");
        let none = c.none_pulls as f64 / 2000.0;
        assert!((none - 0.3).abs() < 0.05, "{none}");
    }

    #[test]
    fn uniform_mode_ignores_the_scores() {
        let cfg = ControllerConfig { uniform: true, none_share: 0.0, ..ControllerConfig::default() };
        let mut c = Controller::new(cfg);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..1000 {
            c.observe(0.5, [0.6, 1.5]);
            c.choose(&mut rng);
        }
        let share = c.pulls[1] as f64 / 1000.0;
        assert!((share - 0.5).abs() < 0.06 && c.none_pulls == 0, "{share}");
    }
}
