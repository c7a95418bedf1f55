//! The data contract: loading, checking and saving a dataset file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::npz::{write_npz, Array, ArrayData, ArrayInfo, NpzReader};

/// Key of the camera frames: uint8 [N, 3, H, W].
pub const CAMERA: &str = "camera";
/// Key of the sensor readings: float32 [N, D] or [N, T, D].
pub const SENSOR: &str = "sensor";
/// Key of the episode ids: int32 [N], optional.
pub const EPISODE: &str = "episode";
/// Key of the time in the episode, seconds: float32 [N], optional.
pub const TIME: &str = "t";

/// The camera encoder halves the image four times, so both sides must be multiples of this.
pub const IMAGE_MULTIPLE: usize = 16;

/// Without an `episode` key the file is one recording; it is cut into segments of this many
/// samples so that it can still be split by blocks of time rather than by sample.
pub const SEGMENT_LEN: usize = 100;

/// One sensor column, as named by the sidecar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Column name, e.g. `j1_angle`.
    pub name: String,
    /// Physical unit, e.g. `rad`; empty when unknown.
    #[serde(default)]
    pub unit: String,
}

/// How the `sensor` key is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorLayout {
    /// [N, D]: one reading per frame; windows are cut inside episodes.
    Readings,
    /// [N, T, D]: a ready-made window of T readings per frame.
    Windows {
        /// Readings per window.
        len: usize,
    },
}

/// A dataset that follows the contract, fully in memory.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The file it was read from (empty for a dataset built in memory).
    pub path: PathBuf,
    /// Frames, uint8, [N, 3, H, W] in C order.
    pub camera: Vec<u8>,
    /// Frame height H.
    pub height: usize,
    /// Frame width W.
    pub width: usize,
    /// Sensor readings, float32, [N, D] or [N, T, D] in C order.
    pub sensor: Vec<f32>,
    /// Layout of `sensor`.
    pub layout: SensorLayout,
    /// Episode id per sample; segments of [`SEGMENT_LEN`] when the file has none.
    pub episode: Vec<i32>,
    /// Whether `episode` came from the file.
    pub has_episode_key: bool,
    /// Time in the episode per sample, when the file has it.
    pub time: Option<Vec<f32>>,
    /// One entry per sensor column.
    pub columns: Vec<Column>,
    /// Sidecar fields other than `sensor_columns`, kept as metadata.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Keys outside the contract, listed, never used unless named by an option.
    pub extra_keys: Vec<ArrayInfo>,
    /// Things worth telling the user that are not errors (e.g. a missing sidecar).
    pub warnings: Vec<String>,
}

/// The JSON sidecar next to a dataset (`data.npz` → `data.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sidecar {
    /// One entry per sensor column.
    pub sensor_columns: Vec<Column>,
    /// Everything else, kept as metadata.
    #[serde(flatten)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// Path of the sidecar that belongs to a dataset file.
pub fn sidecar_path(path: &Path) -> PathBuf {
    path.with_extension("json")
}

impl Dataset {
    /// Number of samples N.
    pub fn len(&self) -> usize {
        self.episode.len()
    }

    /// Whether the dataset has no sample.
    pub fn is_empty(&self) -> bool {
        self.episode.is_empty()
    }

    /// Number of sensor columns D.
    pub fn sensor_dim(&self) -> usize {
        self.columns.len()
    }

    /// Values in one frame (3·H·W).
    pub fn frame_len(&self) -> usize {
        3 * self.height * self.width
    }

    /// Frame `i` as uint8 [3, H, W].
    pub fn frame(&self, i: usize) -> &[u8] {
        let n = self.frame_len();
        &self.camera[i * n..(i + 1) * n]
    }

    /// The distinct episode ids in file order.
    pub fn episode_ids(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = Vec::new();
        for &e in &self.episode {
            if ids.last() != Some(&e) {
                ids.push(e);
            }
        }
        ids
    }

    /// Loads and checks a dataset file and its sidecar.
    ///
    /// Every violation of the contract is an error naming the file, the key, and the
    /// expected and found dtype, shape or value.
    pub fn load(path: &Path) -> Result<Self> {
        let mut npz = NpzReader::open(path)?;
        let keys = npz.keys();
        let missing = |key: &str, expected: &str| Error::MissingKey {
            path: path.into(),
            key: key.into(),
            expected: expected.into(),
            found: keys.join(", "),
        };
        let dtype_err = |key: &str, expected: &str, found: &ArrayData| Error::DType {
            path: path.into(),
            key: key.into(),
            expected: expected.into(),
            found: found.dtype().into(),
        };
        let shape_err = |key: &str, expected: String, found: &[u64]| Error::Shape {
            path: path.into(),
            key: key.into(),
            expected,
            found: found.to_vec(),
        };
        let value_err = |key: &str, reason: String| Error::Value { path: path.into(), key: key.into(), reason };

        let cam = npz.read(CAMERA)?.ok_or_else(|| missing(CAMERA, "uint8 [N, 3, H, W]"))?;
        let ArrayData::U8(camera) = cam.data else {
            return Err(dtype_err(CAMERA, "uint8", &cam.data));
        };
        let s = &cam.shape;
        if s.len() != 4 || s[1] != 3 {
            return Err(shape_err(CAMERA, "[N, 3, H, W] (RGB, channel-first)".into(), s));
        }
        let (n, height, width) = (s[0] as usize, s[2] as usize, s[3] as usize);
        if height == 0 || width == 0 || height % IMAGE_MULTIPLE != 0 || width % IMAGE_MULTIPLE != 0 {
            return Err(shape_err(
                CAMERA,
                format!(
                    "[N, 3, H, W] with H and W positive multiples of {IMAGE_MULTIPLE} (the camera encoder halves the image 4 times); {height}x{width} cannot be encoded"
                ),
                s,
            ));
        }
        if n == 0 {
            return Err(shape_err(CAMERA, "[N, 3, H, W] with N ≥ 1".into(), s));
        }

        let sen = npz.read(SENSOR)?.ok_or_else(|| missing(SENSOR, "float32 [N, D] or [N, T, D]"))?;
        let ArrayData::F32(sensor) = sen.data else {
            return Err(dtype_err(SENSOR, "float32", &sen.data));
        };
        let ss = &sen.shape;
        let (layout, d) = match ss.as_slice() {
            [sn, d] if *sn as usize == n && *d > 0 => (SensorLayout::Readings, *d as usize),
            [sn, t, d] if *sn as usize == n && *d > 0 && *t > 0 => {
                (SensorLayout::Windows { len: *t as usize }, *d as usize)
            }
            _ => {
                return Err(shape_err(
                    SENSOR,
                    format!("[N, D] or [N, T, D] with N = {n} (the number of camera frames)"),
                    ss,
                ))
            }
        };
        check_finite(&sensor, d, |reason| value_err(SENSOR, reason))?;

        let (episode, has_episode_key) = match npz.read(EPISODE)? {
            None => ((0..n).map(|i| (i / SEGMENT_LEN) as i32).collect(), false),
            Some(a) => {
                let ArrayData::I32(e) = a.data else {
                    return Err(dtype_err(EPISODE, "int32", &a.data));
                };
                if a.shape != [n as u64] {
                    return Err(shape_err(EPISODE, format!("[{n}] (one id per frame)"), &a.shape));
                }
                check_contiguous(&e).map_err(|r| value_err(EPISODE, r))?;
                (e, true)
            }
        };

        let time = match npz.read(TIME)? {
            None => None,
            Some(a) => {
                let ArrayData::F32(t) = a.data else {
                    return Err(dtype_err(TIME, "float32", &a.data));
                };
                if a.shape != [n as u64] {
                    return Err(shape_err(TIME, format!("[{n}] (one time per frame)"), &a.shape));
                }
                check_finite(&t, 1, |r| value_err(TIME, r))?;
                check_time_order(&t, &episode).map_err(|r| value_err(TIME, r))?;
                Some(t)
            }
        };

        let mut extra_keys = npz.infos()?;
        extra_keys.retain(|i| ![CAMERA, SENSOR, EPISODE, TIME].contains(&i.key.as_str()));

        let mut warnings = Vec::new();
        let (columns, metadata) = read_sidecar(path, d, &mut warnings);

        Ok(Self {
            path: path.into(),
            camera,
            height,
            width,
            sensor,
            layout,
            episode,
            has_episode_key,
            time,
            columns,
            metadata,
            extra_keys,
            warnings,
        })
    }

    /// Writes the dataset as `.npz` plus its sidecar; `extra` arrays (labels, …) go in too.
    pub fn save(&self, path: &Path, extra: &[(&str, &Array)]) -> Result<()> {
        let n = self.len() as u64;
        let camera = Array {
            shape: vec![n, 3, self.height as u64, self.width as u64],
            data: ArrayData::U8(self.camera.clone()),
        };
        let sensor_shape = match self.layout {
            SensorLayout::Readings => vec![n, self.sensor_dim() as u64],
            SensorLayout::Windows { len } => vec![n, len as u64, self.sensor_dim() as u64],
        };
        let sensor = Array { shape: sensor_shape, data: ArrayData::F32(self.sensor.clone()) };
        let episode = Array { shape: vec![n], data: ArrayData::I32(self.episode.clone()) };
        let time = self.time.as_ref().map(|t| Array { shape: vec![n], data: ArrayData::F32(t.clone()) });
        let mut arrays: Vec<(&str, &Array)> = vec![(CAMERA, &camera), (SENSOR, &sensor), (EPISODE, &episode)];
        if let Some(t) = &time {
            arrays.push((TIME, t));
        }
        arrays.extend_from_slice(extra);
        write_npz(path, &arrays)?;
        let sidecar = Sidecar { sensor_columns: self.columns.clone(), metadata: self.metadata.clone() };
        let side = sidecar_path(path);
        let text = serde_json::to_string_pretty(&sidecar).expect("sidecar serialises");
        std::fs::write(&side, text).map_err(|source| Error::Io { path: side, source })
    }
}

fn read_sidecar(
    path: &Path,
    d: usize,
    warnings: &mut Vec<String>,
) -> (Vec<Column>, serde_json::Map<String, serde_json::Value>) {
    let generic = || (0..d).map(|i| Column { name: format!("s{i}"), unit: String::new() }).collect();
    let side = sidecar_path(path);
    let text = match std::fs::read_to_string(&side) {
        Ok(t) => t,
        Err(_) => {
            warnings.push(format!("no sidecar {}: sensor columns named s0..s{}", side.display(), d - 1));
            return (generic(), Default::default());
        }
    };
    match serde_json::from_str::<Sidecar>(&text) {
        Ok(s) if s.sensor_columns.len() == d => (s.sensor_columns, s.metadata),
        Ok(s) => {
            warnings.push(format!(
                "sidecar {} names {} sensor columns but the data has {d}: generic names used",
                side.display(),
                s.sensor_columns.len()
            ));
            (generic(), s.metadata)
        }
        Err(e) => {
            warnings.push(format!("sidecar {} unreadable ({e}): generic column names used", side.display()));
            (generic(), Default::default())
        }
    }
}

/// Counts NaN and infinite values; `width` is the row length used to report the first one.
fn check_finite(values: &[f32], width: usize, err: impl Fn(String) -> Error) -> Result<()> {
    let nan = values.iter().filter(|v| v.is_nan()).count();
    let inf = values.iter().filter(|v| v.is_infinite()).count();
    if nan + inf == 0 {
        return Ok(());
    }
    let first = values.iter().position(|v| !v.is_finite()).unwrap_or(0);
    Err(err(format!(
        "{nan} NaN and {inf} infinite values (first at flat index {first}, row {}, column {}); the contract requires finite readings",
        first / width,
        first % width
    )))
}

fn check_contiguous(episode: &[i32]) -> std::result::Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for (i, &e) in episode.iter().enumerate() {
        if (i == 0 || episode[i - 1] != e) && !seen.insert(e) {
            return Err(format!(
                "episode {e} is not contiguous: it starts again at sample {i}; samples of an episode must be consecutive"
            ));
        }
    }
    Ok(())
}

fn check_time_order(t: &[f32], episode: &[i32]) -> std::result::Result<(), String> {
    for i in 1..t.len() {
        if episode[i] == episode[i - 1] && t[i] < t[i - 1] {
            return Err(format!(
                "time goes backwards inside episode {} at sample {i} ({} after {}); samples must be time-ordered",
                episode[i],
                t[i],
                t[i - 1]
            ));
        }
    }
    Ok(())
}
