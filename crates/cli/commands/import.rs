//! `mmguard import`

use anyhow::{bail, Context};
use mmguard_convert::{import, ImageTime, ImportConfig};

use crate::args::ImportArgs;

pub fn run(a: ImportArgs) -> anyhow::Result<()> {
    let image_time = match a.fps {
        Some(fps) if fps.is_finite() && fps > 0.0 => ImageTime::Index { fps },
        Some(fps) => bail!("--fps {fps}: must be a positive number"),
        None => ImageTime::FileName { scale: a.time_scale },
    };
    let cfg = ImportConfig {
        images: a.images,
        csv: a.csv,
        time_column: a.time_column,
        episode_column: a.episode_column,
        labels: a.labels,
        image_time,
        tolerance: a.tolerance,
    };
    let got = import(&cfg)?;
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let labels: Vec<(&str, &_)> = got.labels.iter().map(|(k, v)| (k.as_str(), v)).collect();
    got.dataset.save(&a.out, &labels)?;
    let report_path = a.out.with_extension("import.json");
    std::fs::write(&report_path, serde_json::to_string_pretty(&got.report)?)
        .with_context(|| format!("writing {}", report_path.display()))?;
    let r = &got.report;
    println!(
        "imported {} samples in {} episodes ({}x{} frames, {} sensor columns) from {} images and {} readings; tolerance {} s",
        r.samples,
        r.episodes,
        got.dataset.width,
        got.dataset.height,
        got.dataset.sensor_dim(),
        r.images,
        r.readings,
        r.tolerance_s
    );
    for d in &r.dropped {
        println!("dropped {} × {} (e.g. {})", d.count, d.reason, d.examples.join("; "));
    }
    println!("wrote {} and {}", a.out.display(), report_path.display());
    Ok(())
}
