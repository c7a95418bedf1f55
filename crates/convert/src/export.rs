//! Contract dataset → PNG frames + CSV.

use std::io::Write;
use std::path::{Path, PathBuf};

use mmguard_data::layout::interleave_into;
use mmguard_data::npz::{Array, ArrayData};
use mmguard_data::{Dataset, SensorLayout};
use serde::{Deserialize, Serialize};

use crate::{io, Error, Result};

/// Folder of the frames inside an export.
pub const FRAMES_DIR: &str = "frames";
/// The readings' file inside an export.
pub const SENSORS_CSV: &str = "sensors.csv";
/// The description of an export: columns with units, labels, metadata.
pub const EXPORT_MANIFEST: &str = "export.json";

/// What an export wrote; saved as `export.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportSummary {
    /// Frames written.
    pub frames: usize,
    /// Episodes.
    pub episodes: usize,
    /// Sensor columns with units.
    pub columns: Vec<mmguard_data::Column>,
    /// Per-sample label columns written after the sensors.
    pub labels: Vec<String>,
    /// Whether the times are the file's own (`true`) or sample positions in the episode.
    pub has_time: bool,
    /// The dataset's metadata.
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// The file name of sample `index`'s frame: the index, unique in the file (time stamps may
/// repeat), then the time stamp in Rust's shortest round-trip form, the name's last number, so
/// that import reads back the same `f32`; names sort in sample order.
fn frame_name(index: usize, time: f32) -> String {
    format!("{index:06}_{time}.png")
}

/// Writes `data` into `dir` (created): one PNG per frame in one folder per episode, the
/// readings and `labels` (per-sample arrays, e.g. the twin's `phase`) as one CSV. Datasets
/// without a time key get each sample's position in its episode as its time.
pub fn export(data: &Dataset, labels: &[(String, Array)], dir: &Path) -> Result<ExportSummary> {
    if let SensorLayout::Windows { len } = data.layout {
        return Err(Error::Invalid(format!(
            "{}: sensor holds windows [N, {len}, D]; export writes one CSV row per sample and needs readings [N, D]",
            data.path.display()
        )));
    }
    let n = data.len();
    for (key, a) in labels {
        if a.shape != [n as u64] {
            return Err(Error::Invalid(format!("label '{key}' has shape {:?}, expected [{n}]", a.shape)));
        }
    }
    let frames_dir = dir.join(FRAMES_DIR);
    std::fs::create_dir_all(&frames_dir).map_err(io(&frames_dir))?;
    let times: Vec<f32> = match &data.time {
        Some(t) => t.clone(),
        None => {
            let mut pos = Vec::with_capacity(n);
            for i in 0..n {
                pos.push(if i > 0 && data.episode[i] == data.episode[i - 1] { pos[i - 1] + 1.0 } else { 0.0 });
            }
            pos
        }
    };
    let csv_path = dir.join(SENSORS_CSV);
    let mut csv = std::io::BufWriter::new(std::fs::File::create(&csv_path).map_err(io(&csv_path))?);
    let mut header = vec!["episode".to_string(), "time".to_string()];
    header.extend(data.columns.iter().map(|c| c.name.clone()));
    header.extend(labels.iter().map(|(k, _)| k.clone()));
    writeln!(csv, "{}", header.join(",")).map_err(io(&csv_path))?;
    let d = data.sensor_dim();
    let mut rgb = vec![0u8; data.frame_len()];
    // every sample's frame is its own file: a name written twice would lose a frame
    let mut written = std::collections::HashSet::with_capacity(n);
    for (i, &time) in times.iter().enumerate() {
        let episode_dir = frames_dir.join(format!("episode_{:04}", data.episode[i]));
        if i == 0 || data.episode[i] != data.episode[i - 1] {
            std::fs::create_dir_all(&episode_dir).map_err(io(&episode_dir))?;
        }
        interleave_into(data.frame(i), &mut rgb);
        let path = episode_dir.join(frame_name(i, time));
        if !written.insert(path.clone()) {
            return Err(Error::Invalid(format!("frame {} would overwrite another sample's", path.display())));
        }
        image::save_buffer(&path, &rgb, data.width as u32, data.height as u32, image::ExtendedColorType::Rgb8)
            .map_err(|e| Error::Image { path: path.clone(), message: e.to_string() })?;
        let mut row = vec![data.episode[i].to_string(), time.to_string()];
        row.extend(data.sensor[i * d..(i + 1) * d].iter().map(f32::to_string));
        row.extend(labels.iter().map(|(_, a)| label_value(&a.data, i)));
        writeln!(csv, "{}", row.join(",")).map_err(io(&csv_path))?;
    }
    csv.flush().map_err(io(&csv_path))?;
    let summary = ExportSummary {
        frames: written.len(),
        episodes: data.episode_ids().len(),
        columns: data.columns.clone(),
        labels: labels.iter().map(|(k, _)| k.clone()).collect(),
        has_time: data.time.is_some(),
        metadata: data.metadata.clone(),
    };
    let manifest: PathBuf = dir.join(EXPORT_MANIFEST);
    let text = serde_json::to_string_pretty(&summary).expect("summary serialises");
    std::fs::write(&manifest, text).map_err(io(&manifest))?;
    Ok(summary)
}

fn label_value(data: &ArrayData, i: usize) -> String {
    match data {
        ArrayData::U8(v) => v[i].to_string(),
        ArrayData::I32(v) => v[i].to_string(),
        ArrayData::I64(v) => v[i].to_string(),
        ArrayData::F32(v) => v[i].to_string(),
        ArrayData::F64(v) => v[i].to_string(),
    }
}
