//! `mmguard inspect`

use crate::args::InspectArgs;

pub fn run(a: InspectArgs) -> anyhow::Result<()> {
    let data = super::load_dataset(&a.data)?;
    let s = data.summary();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!("{}", s.path);
    println!("  samples      {}", s.samples);
    println!(
        "  camera       uint8 [{}, 3, {}, {}], channel means {:.3?}",
        s.samples, s.image[0], s.image[1], s.camera_mean
    );
    println!("  sensor       float32, {:?}, {} columns", s.sensor_layout, s.columns.len());
    println!(
        "  episodes     {} ({}), {}..{} samples each",
        s.episodes,
        if s.episode_key { "from the file" } else { "no episode key: segments of 100" },
        s.episode_len[0],
        s.episode_len[1]
    );
    println!("  time key     {}", if s.time_key { "yes" } else { "no" });
    println!("  fingerprint  {}", s.fingerprint);
    for e in &s.extra_keys {
        println!("  other key    {} {} {:?}", e.key, e.dtype, e.shape);
    }
    println!("\n  {:<18} {:>8} {:>12} {:>12} {:>12} {:>12}", "column", "unit", "min", "max", "mean", "std");
    for c in &s.columns {
        println!(
            "  {:<18} {:>8} {:>12.4} {:>12.4} {:>12.4} {:>12.4}",
            c.column.name, c.column.unit, c.min, c.max, c.mean, c.std
        );
    }
    Ok(())
}
