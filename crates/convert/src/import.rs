//! A folder of images + a CSV of readings → contract dataset, aligned by time stamp.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mmguard_data::layout::channel_first_into;
use mmguard_data::npz::{Array, ArrayData};
use mmguard_data::{Column, Dataset, SensorLayout, IMAGE_MULTIPLE};
use serde::Serialize;

use crate::export::{ExportSummary, EXPORT_MANIFEST};
use crate::{io, Error, Result};

/// Where an image's time stamp comes from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum ImageTime {
    /// The last number in the file name, times `scale` (0.001 for names in milliseconds).
    FileName {
        /// Seconds per unit of the number.
        scale: f64,
    },
    /// The image's position in name order (per episode folder) divided by `fps`.
    Index {
        /// Frames per second.
        fps: f64,
    },
}

/// What to import and how to align it.
#[derive(Debug, Clone, Serialize)]
pub struct ImportConfig {
    /// Folder of images (PNG or JPEG), flat or with one sub-folder per episode (the folder
    /// name's last number is the episode id).
    pub images: PathBuf,
    /// CSV of readings with a header row.
    pub csv: PathBuf,
    /// Name of the time column, seconds.
    pub time_column: String,
    /// Name of the episode column; used when the CSV has it.
    pub episode_column: String,
    /// Columns that are per-sample labels (e.g. `phase`), not sensors.
    pub labels: Vec<String>,
    /// Time stamps of the images.
    pub image_time: ImageTime,
    /// Largest time difference between an image and its reading, seconds; `None` takes half
    /// the median interval between readings.
    pub tolerance: Option<f64>,
}

/// Things left out, grouped by reason.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Dropped {
    /// Why.
    pub reason: String,
    /// How many.
    pub count: usize,
    /// The first few (file or CSV line).
    pub examples: Vec<String>,
}

/// What import found, kept and dropped.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// Image files found.
    pub images: usize,
    /// CSV data rows found.
    pub readings: usize,
    /// Samples written (an image and its reading).
    pub samples: usize,
    /// Episodes written.
    pub episodes: usize,
    /// Alignment tolerance used, seconds (largest over episodes).
    pub tolerance_s: f64,
    /// What was left out and why.
    pub dropped: Vec<Dropped>,
}

impl ImportReport {
    fn drop(&mut self, reason: impl Into<String>, example: impl Into<String>) {
        let reason = reason.into();
        let entry = match self.dropped.iter_mut().position(|d| d.reason == reason) {
            Some(k) => &mut self.dropped[k],
            None => {
                self.dropped.push(Dropped { reason, count: 0, examples: Vec::new() });
                self.dropped.last_mut().expect("just pushed")
            }
        };
        entry.count += 1;
        if entry.examples.len() < 3 {
            entry.examples.push(example.into());
        }
    }
}

/// The imported dataset, its label arrays and the report.
#[derive(Debug)]
pub struct Imported {
    /// The dataset (readings layout, with time).
    pub dataset: Dataset,
    /// Label arrays by name: int32 when every value is a whole number, float32 otherwise.
    pub labels: Vec<(String, Array)>,
    /// What was kept and dropped.
    pub report: ImportReport,
}

struct Reading {
    line: usize,
    episode: i32,
    time: f64,
    values: Vec<f32>,
    labels: Vec<f64>,
}

struct Image {
    path: PathBuf,
    episode: Option<i32>,
    time: f64,
}

/// The last number (digits with an optional fraction) in `s`.
fn last_number(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut end = b.len();
    while end > 0 && !b[end - 1].is_ascii_digit() {
        end -= 1;
    }
    if end == 0 {
        return None;
    }
    let digits_before = |mut k: usize| {
        while k > 0 && b[k - 1].is_ascii_digit() {
            k -= 1;
        }
        k
    };
    let mut start = digits_before(end);
    if start >= 2 && b[start - 1] == b'.' && b[start - 2].is_ascii_digit() {
        start = digits_before(start - 1);
    }
    // a minus sign at the start or after a separator is the number's ("000012_-0.5", as
    // export writes a negative time); after a letter or digit it is a separator ("frame-12")
    if start >= 1 && b[start - 1] == b'-' && (start == 1 || !b[start - 2].is_ascii_alphanumeric()) {
        start -= 1;
    }
    s[start..end].parse().ok()
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .map_err(io(dir))?;
    entries.sort();
    Ok(entries)
}

fn scan_images(cfg: &ImportConfig, report: &mut ImportReport) -> Result<Vec<Image>> {
    let top = sorted_entries(&cfg.images)?;
    let folders: Vec<&PathBuf> = top.iter().filter(|p| p.is_dir()).collect();
    let groups: Vec<(Option<i32>, Vec<PathBuf>)> = if folders.is_empty() {
        vec![(None, top.clone())]
    } else {
        let mut g = Vec::new();
        for (k, f) in folders.iter().enumerate() {
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let id = last_number(&name).filter(|v| v.fract() == 0.0).map_or(k as i32, |v| v as i32);
            g.push((Some(id), sorted_entries(f)?));
        }
        g
    };
    let mut images = Vec::new();
    for (episode, files) in groups {
        let mut position = 0usize;
        for path in files.into_iter().filter(|p| p.is_file()) {
            if !is_image(&path) {
                report.drop("not a PNG or JPEG file", path.display().to_string());
                continue;
            }
            report.images += 1;
            let time = match cfg.image_time {
                ImageTime::Index { fps } => Some(position as f64 / fps),
                ImageTime::FileName { scale } => {
                    path.file_stem().and_then(|s| s.to_str()).and_then(last_number).map(|v| v * scale)
                }
            };
            position += 1;
            match time {
                Some(time) => images.push(Image { path, episode, time }),
                None => report.drop("no time stamp (number) in the file name", path.display().to_string()),
            }
        }
    }
    Ok(images)
}

struct Csv {
    columns: Vec<String>,
    labels: Vec<String>,
    has_episode: bool,
    readings: Vec<Reading>,
}

fn read_csv(cfg: &ImportConfig, report: &mut ImportReport) -> Result<Csv> {
    let path = &cfg.csv;
    let csv_err = |message: String| Error::Csv { path: path.clone(), message };
    mmguard_data::ensure_regular_file(path).map_err(|e| csv_err(e.to_string()))?;
    let mut reader =
        csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(path).map_err(|e| csv_err(e.to_string()))?;
    let header: Vec<String> = reader.headers().map_err(|e| csv_err(e.to_string()))?.iter().map(String::from).collect();
    let find = |name: &str| header.iter().position(|h| h == name);
    let time_at = find(&cfg.time_column)
        .ok_or_else(|| csv_err(format!("no time column '{}'; columns: {}", cfg.time_column, header.join(", "))))?;
    let episode_at = find(&cfg.episode_column);
    let mut label_at = Vec::new();
    for l in &cfg.labels {
        label_at
            .push(find(l).ok_or_else(|| csv_err(format!("no label column '{l}'; columns: {}", header.join(", "))))?);
    }
    let sensor_at: Vec<usize> =
        (0..header.len()).filter(|&k| k != time_at && Some(k) != episode_at && !label_at.contains(&k)).collect();
    if sensor_at.is_empty() {
        return Err(csv_err("no sensor column besides time, episode and labels".into()));
    }
    let mut readings = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        report.readings += 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                report.drop("CSV row cannot be read", format!("line {line}: {e}"));
                continue;
            }
        };
        if record.len() != header.len() {
            report.drop(
                "CSV row has the wrong number of fields",
                format!("line {line}: {} of {}", record.len(), header.len()),
            );
            continue;
        }
        let number = |k: usize| -> std::result::Result<f64, String> {
            let text = &record[k];
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(format!("line {line}, column {}: '{text}'", header[k])),
            }
        };
        let parsed = (|| {
            let time = number(time_at)?;
            let episode = match episode_at {
                Some(k) => {
                    let v = number(k)?;
                    if v.fract() != 0.0 || v.abs() > f64::from(i32::MAX) {
                        return Err(format!(
                            "line {line}, column {}: '{}' is not an episode id",
                            header[k], &record[k]
                        ));
                    }
                    v as i32
                }
                None => 0,
            };
            let values =
                sensor_at.iter().map(|&k| number(k).map(|v| v as f32)).collect::<std::result::Result<_, _>>()?;
            let labels = label_at.iter().map(|&k| number(k)).collect::<std::result::Result<_, _>>()?;
            Ok(Reading { line, episode, time, values, labels })
        })();
        match parsed {
            Ok(r) => readings.push(r),
            Err(example) => report.drop("CSV value missing, not a number or not finite", example),
        }
    }
    Ok(Csv {
        columns: sensor_at.iter().map(|&k| header[k].clone()).collect(),
        labels: cfg.labels.clone(),
        has_episode: episode_at.is_some(),
        readings,
    })
}

fn median_interval(times: &[f64]) -> Option<f64> {
    let mut d: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0.0).collect();
    d.sort_by(f64::total_cmp);
    d.get(d.len() / 2).copied()
}

/// Imports images and readings; see the crate docs for the layout.
pub fn import(cfg: &ImportConfig) -> Result<Imported> {
    let mut report =
        ImportReport { images: 0, readings: 0, samples: 0, episodes: 0, tolerance_s: 0.0, dropped: Vec::new() };
    let images = scan_images(cfg, &mut report)?;
    let csv = read_csv(cfg, &mut report)?;
    let foldered = images.iter().any(|i| i.episode.is_some());
    if foldered && !csv.has_episode {
        return Err(Error::Csv {
            path: cfg.csv.clone(),
            message: format!("the images are in episode folders but the CSV has no '{}' column", cfg.episode_column),
        });
    }
    // groups aligned on their own clock: an episode folder, or the whole flat folder
    let mut rows_by_group: BTreeMap<Option<i32>, Vec<usize>> = BTreeMap::new();
    for (k, r) in csv.readings.iter().enumerate() {
        rows_by_group.entry(foldered.then_some(r.episode)).or_default().push(k);
    }
    let mut images_by_group: BTreeMap<Option<i32>, Vec<&Image>> = BTreeMap::new();
    for im in &images {
        images_by_group.entry(im.episode).or_default().push(im);
    }
    // (episode, time, image, reading)
    let mut matched: Vec<(i32, f64, &Image, usize)> = Vec::new();
    let mut used = vec![false; csv.readings.len()];
    for (group, mut ims) in images_by_group {
        let mut rows = rows_by_group.remove(&group).unwrap_or_default();
        rows.sort_by(|&a, &b| csv.readings[a].time.total_cmp(&csv.readings[b].time));
        let times: Vec<f64> = rows.iter().map(|&k| csv.readings[k].time).collect();
        let tolerance = cfg.tolerance.unwrap_or_else(|| median_interval(&times).map_or(0.0, |d| d / 2.0));
        report.tolerance_s = report.tolerance_s.max(tolerance);
        ims.sort_by(|a, b| a.time.total_cmp(&b.time));
        for im in ims {
            let at = times.partition_point(|&t| t < im.time);
            // repeated time stamps: images and readings of one time pair in order (the images
            // sort by name, the readings by line), each with the first reading not yet taken
            let same = (at..times.len()).take_while(|&k| times[k] == im.time).find(|&k| !used[rows[k]]);
            let nearest = same.or_else(|| {
                [at.checked_sub(1), (at < times.len()).then_some(at)]
                    .into_iter()
                    .flatten()
                    .min_by(|&a, &b| (times[a] - im.time).abs().total_cmp(&(times[b] - im.time).abs()))
            });
            match nearest {
                Some(k) if (times[k] - im.time).abs() <= tolerance + 1e-9 => {
                    let row = rows[k];
                    if used[row] {
                        report.drop(
                            "its nearest reading is already matched to another image",
                            im.path.display().to_string(),
                        );
                    } else {
                        used[row] = true;
                        matched.push((csv.readings[row].episode, im.time, im, row));
                    }
                }
                _ => report
                    .drop(format!("no reading within the tolerance ({tolerance} s)"), im.path.display().to_string()),
            }
        }
    }
    for (k, r) in csv.readings.iter().enumerate() {
        if !used[k] {
            report.drop("reading with no image", format!("line {}", r.line));
        }
    }
    matched.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut ds = Dataset {
        path: PathBuf::new(),
        camera: Vec::new(),
        height: 0,
        width: 0,
        sensor: Vec::new(),
        layout: SensorLayout::Readings,
        episode: Vec::new(),
        has_episode_key: true,
        time: Some(Vec::new()),
        columns: Vec::new(),
        metadata: serde_json::Map::new(),
        extra_keys: Vec::new(),
        warnings: Vec::new(),
    };
    let mut label_values: Vec<Vec<f64>> = vec![Vec::new(); csv.labels.len()];
    let mut chw = Vec::new();
    for (episode, time, im, row) in matched {
        let rgb = match image::open(&im.path) {
            Ok(i) => i.to_rgb8(),
            Err(e) => {
                report.drop("image cannot be decoded", format!("{}: {e}", im.path.display()));
                continue;
            }
        };
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        if ds.camera.is_empty() {
            if w == 0 || h == 0 || !h.is_multiple_of(IMAGE_MULTIPLE) || !w.is_multiple_of(IMAGE_MULTIPLE) {
                return Err(Error::Image {
                    path: im.path.clone(),
                    message: format!(
                        "frame is {w}x{h}; the data contract needs width and height multiples of {IMAGE_MULTIPLE}"
                    ),
                });
            }
            (ds.height, ds.width) = (h, w);
        } else if (h, w) != (ds.height, ds.width) {
            report.drop(
                format!("image size differs from the first frame's {}x{}", ds.width, ds.height),
                format!("{}: {w}x{h}", im.path.display()),
            );
            continue;
        }
        chw.resize(3 * h * w, 0);
        channel_first_into(rgb.as_raw(), 3, &mut chw);
        ds.camera.extend_from_slice(&chw);
        let r = &csv.readings[row];
        ds.sensor.extend_from_slice(&r.values);
        ds.episode.push(episode);
        ds.time.as_mut().expect("set above").push(time as f32);
        for (v, l) in label_values.iter_mut().zip(&r.labels) {
            v.push(*l);
        }
    }
    report.samples = ds.episode.len();
    report.episodes = ds.episode_ids().len();
    if report.samples == 0 {
        let reasons: Vec<String> = report.dropped.iter().map(|d| format!("{} × {}", d.count, d.reason)).collect();
        return Err(Error::Invalid(format!(
            "nothing to import from {} and {}: {} images, {} readings; dropped: {}",
            cfg.images.display(),
            cfg.csv.display(),
            report.images,
            report.readings,
            reasons.join("; ")
        )));
    }
    // an export's manifest next to the CSV gives units and metadata back
    let manifest = cfg.csv.with_file_name(EXPORT_MANIFEST);
    let exported: Option<ExportSummary> =
        std::fs::read_to_string(&manifest).ok().and_then(|t| serde_json::from_str(&t).ok());
    let unit = |name: &str| {
        exported
            .as_ref()
            .and_then(|e| e.columns.iter().find(|c| c.name == name))
            .map_or(String::new(), |c| c.unit.clone())
    };
    ds.columns = csv.columns.iter().map(|name| Column { name: name.clone(), unit: unit(name) }).collect();
    if let Some(e) = &exported {
        ds.metadata = e.metadata.clone();
    }
    ds.metadata.insert("imported".into(), serde_json::to_value(cfg).expect("config serialises"));
    let labels = csv
        .labels
        .iter()
        .zip(label_values)
        .map(|(name, v)| {
            let n = v.len() as u64;
            let whole = v.iter().all(|x| x.fract() == 0.0 && x.abs() <= f64::from(i32::MAX));
            let data = if whole {
                ArrayData::I32(v.iter().map(|&x| x as i32).collect())
            } else {
                ArrayData::F32(v.iter().map(|&x| x as f32).collect())
            };
            (name.clone(), Array { shape: vec![n], data })
        })
        .collect();
    Ok(Imported { dataset: ds, labels, report })
}

#[cfg(test)]
mod tests {
    use super::last_number;

    #[test]
    fn the_last_number_of_a_name_is_its_time_stamp() {
        assert_eq!(last_number("frame_0012.350"), Some(12.35));
        assert_eq!(last_number("12.35"), Some(12.35));
        assert_eq!(last_number("cam1_000123"), Some(123.0));
        assert_eq!(last_number("episode_0003"), Some(3.0));
        assert_eq!(last_number("1.2.3"), Some(2.3));
        assert_eq!(last_number("frame"), None);
        // a sign after a separator or at the start; a dash after a letter or digit separates
        assert_eq!(last_number("000012_-0.5"), Some(-0.5));
        assert_eq!(last_number("-3"), Some(-3.0));
        assert_eq!(last_number("frame-12"), Some(12.0));
        assert_eq!(last_number("2024-01"), Some(1.0));
    }
}
