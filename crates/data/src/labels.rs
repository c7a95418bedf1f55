//! Per-sample class labels for downstream tasks, read from an extra key of a dataset's archive
//! (the twin's `phase`, or any integer key a user names).

use crate::npz::{ArrayData, NpzReader};
use crate::{Dataset, Error, Result};

/// Class labels of every sample of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassLabels {
    /// The archive key they were read from.
    pub key: String,
    /// Class index per sample, [N].
    pub values: Vec<u32>,
    /// Number of classes: the largest index + 1, or the number of names if that is larger.
    pub classes: usize,
    /// Class names from the sidecar metadata (`<key>_names` or `<key>s`), else the indices.
    pub names: Vec<String>,
}

/// Reads the integer array `key` ([N], uint8/int32/int64, values ≥ 0) of `data`'s archive.
pub fn read_class_labels(data: &Dataset, key: &str) -> Result<ClassLabels> {
    let path = &data.path;
    let mut npz = NpzReader::open(path)?;
    let keys = npz.keys();
    let array = npz.read(key)?.ok_or_else(|| Error::MissingKey {
        path: path.clone(),
        key: key.into(),
        expected: "integer class labels [N]".into(),
        found: keys.join(", "),
    })?;
    if array.shape != [data.len() as u64] {
        return Err(Error::Shape {
            path: path.clone(),
            key: key.into(),
            expected: format!("[{}] (one label per sample)", data.len()),
            found: array.shape,
        });
    }
    let raw: Vec<i64> = match array.data {
        ArrayData::U8(v) => v.into_iter().map(i64::from).collect(),
        ArrayData::I32(v) => v.into_iter().map(i64::from).collect(),
        ArrayData::I64(v) => v,
        other => {
            return Err(Error::DType {
                path: path.clone(),
                key: key.into(),
                expected: "uint8, int32 or int64".into(),
                found: other.dtype().into(),
            })
        }
    };
    if let Some((i, v)) = raw.iter().enumerate().find(|(_, v)| !(0..=i64::from(u16::MAX)).contains(*v)) {
        return Err(Error::Value {
            path: path.clone(),
            key: key.into(),
            reason: format!("class labels must be in 0..=65535; sample {i} has {v}"),
        });
    }
    let values: Vec<u32> = raw.into_iter().map(|v| v as u32).collect();
    let names: Vec<String> = [format!("{key}_names"), format!("{key}s")]
        .iter()
        .find_map(|k| data.metadata.get(k)?.as_array().cloned())
        .map(|a| a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect())
        .unwrap_or_default();
    let classes = (values.iter().max().map_or(0, |&m| m as usize + 1)).max(names.len());
    let names = if names.len() == classes { names } else { (0..classes).map(|c| c.to_string()).collect() };
    Ok(ClassLabels { key: key.into(), values, classes, names })
}
