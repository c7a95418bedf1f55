//! `mmguard export`

use mmguard_data::npz::NpzReader;

use crate::args::ExportArgs;

pub fn run(a: ExportArgs) -> anyhow::Result<()> {
    let data = super::load_dataset(&a.data)?;
    // every other per-sample array (the twin's phase, a user's labels) goes into the CSV too
    let n = data.len() as u64;
    let mut reader = NpzReader::open(&a.data)?;
    let mut labels = Vec::new();
    for info in data.extra_keys.iter().filter(|k| k.shape == [n]) {
        if let Some(array) = reader.read(&info.key)? {
            labels.push((info.key.clone(), array));
        }
    }
    let summary = mmguard_convert::export(&data, &labels, &a.out)?;
    println!(
        "exported {} frames of {} episodes to {} (frames/, sensors.csv with {} sensor and {} label columns, export.json)",
        summary.frames,
        summary.episodes,
        a.out.display(),
        summary.columns.len(),
        summary.labels.len()
    );
    Ok(())
}
