//! What the evaluation's test files share.

use mmguard_data::Dataset;
use mmguard_twin::TwinConfig;

/// A small arm-twin file (10 episodes of 60 samples, 32×32 frames) written into `dir` and
/// loaded, from the twin's `seed`.
pub fn small_twin(dir: &std::path::Path, seed: u64) -> Dataset {
    let path = dir.join("arm.npz");
    let twin = TwinConfig { episodes: 10, samples_per_episode: 60, height: 32, width: 32, seed, ..Default::default() };
    mmguard_twin::write(&twin, &path).unwrap();
    Dataset::load(&path).unwrap()
}
