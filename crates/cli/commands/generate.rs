//! `mmguard generate`

use anyhow::Context;
use mmguard_twin::TwinConfig;

use crate::args::GenerateArgs;

pub fn run(a: GenerateArgs) -> anyhow::Result<()> {
    let cfg = TwinConfig {
        scene: a.scene,
        episodes: a.episodes,
        samples_per_episode: a.samples,
        height: a.height,
        width: a.width,
        seed: a.seed,
        ..TwinConfig::default()
    };
    let out = a.out.unwrap_or_else(|| format!("data/{}.npz", a.scene.name()).into());
    write(&cfg, &out)
}

/// Generates twin data into `out`, creating its folder.
pub(crate) fn write(cfg: &TwinConfig, out: &std::path::Path) -> anyhow::Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let start = std::time::Instant::now();
    let g = mmguard_twin::write(cfg, out)?;
    tracing::info!(
        "wrote {} ({} samples, {} episodes, {}x{} frames, {} sensor columns) in {:.1} s",
        out.display(),
        g.dataset.len(),
        cfg.episodes,
        cfg.height,
        cfg.width,
        g.dataset.sensor_dim(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
