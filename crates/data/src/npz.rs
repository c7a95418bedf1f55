//! Reading and writing `.npz` archives (NumPy's zip of `.npy` files), stored or deflated.
//!
//! A compatible file is what NumPy writes with
//! `np.savez_compressed("data.npz", camera=cam_u8, sensor=sens_f32, episode=ep_i32)`.
//! Only the dtypes of the data contract are decoded (uint8, int32, int64, float32, float64);
//! any other key is listed with its dtype and shape and left alone.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use npyz::{DType, NpyFile, WriterBuilder};

use crate::error::{Error, Result};

/// The element data of an array, by dtype.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayData {
    /// `uint8`
    U8(Vec<u8>),
    /// `int32`
    I32(Vec<i32>),
    /// `int64`
    I64(Vec<i64>),
    /// `float32`
    F32(Vec<f32>),
    /// `float64`
    F64(Vec<f64>),
}

/// One array of an archive: its shape and data, in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Dimensions, outermost first.
    pub shape: Vec<u64>,
    /// Elements in C (row-major) order.
    pub data: ArrayData,
}

/// The name and layout of an array, read from its header only.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ArrayInfo {
    /// Key in the archive (file name without `.npy`).
    pub key: String,
    /// NumPy dtype name, e.g. `uint8`, `float32`, or the raw descriptor for other types.
    pub dtype: String,
    /// Dimensions, outermost first.
    pub shape: Vec<u64>,
}

/// An open `.npz` archive: a file, or bytes in memory (a request body).
pub struct NpzReader<R = BufReader<File>> {
    /// The file, or a label such as `request body`, for error messages.
    path: PathBuf,
    archive: zip::ZipArchive<R>,
    /// Most bytes one array may decompress to: a small deflated body can claim gigabytes.
    max_array_bytes: u64,
    /// Bytes the arrays read so far may still add up to ([`NpzReader::with_budget`]).
    budget: u64,
    /// The budget this reader started with, for the error message.
    budget_total: u64,
}

impl<R> std::fmt::Debug for NpzReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NpzReader").field("path", &self.path).finish()
    }
}

/// The NumPy name of a plain dtype, or its raw descriptor.
fn dtype_name(dtype: &DType) -> String {
    let DType::Plain(ts) = dtype else {
        return dtype.descr();
    };
    let s = ts.to_string();
    let code = s.trim_start_matches(['<', '>', '|', '=']);
    match code {
        "u1" => "uint8",
        "i1" => "int8",
        "u2" => "uint16",
        "i2" => "int16",
        "u4" => "uint32",
        "i4" => "int32",
        "u8" => "uint64",
        "i8" => "int64",
        "f2" => "float16",
        "f4" => "float32",
        "f8" => "float64",
        "b1" => "bool",
        _ => return s,
    }
    .to_string()
}

impl NpzReader {
    /// Opens an archive; fails with [`Error::Archive`] when it is not a readable zip.
    pub fn open(path: &Path) -> Result<Self> {
        crate::ensure_regular_file(path).map_err(|source| Error::Io { path: path.into(), source })?;
        let file = File::open(path).map_err(|source| Error::Io { path: path.into(), source })?;
        let reader = Self::from_reader(path, BufReader::new(file), u64::MAX)?;
        Ok(match available_memory() {
            Some(bytes) => reader.with_budget(bytes / 4 * 3),
            None => reader,
        })
    }
}

/// What the system can still give this process (`MemAvailable` of `/proc/meminfo`, Linux):
/// a file whose honest headers add up to more is refused with its sizes instead of ending in
/// the out-of-memory killer (measured before the budget: a 10 MB file inflating to 10.7 GB
/// ran out of memory with only "i/o error").
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

impl<R: Read + std::io::Seek> NpzReader<R> {
    /// Reads an archive from any seekable source, `label` naming it in errors; an array that
    /// decompresses to more than `max_array_bytes` is refused.
    pub fn from_reader(label: &Path, reader: R, max_array_bytes: u64) -> Result<Self> {
        let archive =
            zip::ZipArchive::new(reader).map_err(|e| Error::Archive { path: label.into(), reason: e.to_string() })?;
        Ok(Self { path: label.into(), archive, max_array_bytes, budget: u64::MAX, budget_total: u64::MAX })
    }

    /// Limits the bytes all arrays read through this reader add up to; an array that would go
    /// beyond is refused before it is inflated. [`NpzReader::open`] sets three quarters of the
    /// memory the system has available.
    pub fn with_budget(self, bytes: u64) -> Self {
        Self { budget: bytes, budget_total: bytes, ..self }
    }

    /// The keys of the archive, in archive order.
    pub fn keys(&self) -> Vec<String> {
        self.archive.file_names().map(|n| n.strip_suffix(".npy").unwrap_or(n).to_string()).collect()
    }

    fn array_error(&self, key: &str, reason: impl ToString) -> Error {
        Error::Array { path: self.path.clone(), key: key.into(), reason: reason.to_string() }
    }

    /// The header of `key`'s array, read from the start of its member: nothing else of it is
    /// inflated.
    fn header(&mut self, key: &str) -> Result<Option<npyz::NpyHeader>> {
        let name = format!("{key}.npy");
        if self.archive.index_for_name(&name).is_none() {
            return Ok(None);
        }
        let header = self
            .archive
            .by_name(&name)
            .map_err(std::io::Error::from)
            .and_then(|mut member| npyz::NpyHeader::from_reader(&mut member));
        header.map(Some).map_err(|e| self.array_error(key, e))
    }

    /// Dtype and shape of every array, from the headers alone.
    pub fn infos(&mut self) -> Result<Vec<ArrayInfo>> {
        let mut infos = Vec::new();
        for key in self.keys() {
            if let Some(h) = self.header(&key)? {
                let npy = NpyFile::with_header(h, std::io::empty());
                infos.push(ArrayInfo { dtype: dtype_name(&npy.dtype()), shape: npy.shape().to_vec(), key });
            }
        }
        Ok(infos)
    }

    /// Reads one array, or `None` when the key is absent. Fails on a dtype outside the
    /// contract's set, on data that ends early, and on a member that inflates beyond what its
    /// header promises or beyond the reader's limit — checked before anything is allocated, and
    /// the inflation stops at the promised size, so a lying header or a zip bomb costs no more
    /// memory than the array it claims to be.
    pub fn read(&mut self, key: &str) -> Result<Option<Array>> {
        let name_in_zip = format!("{key}.npy");
        if self.archive.index_for_name(&name_in_zip).is_none() {
            return Ok(None);
        }
        // One pass over the member: its header, the checks, then at most one byte more than
        // the header promises. The error names only path and key, so it is built from copies
        // while the member borrows the archive.
        let path = self.path.clone();
        let error = |reason: String| Error::Array { path: path.clone(), key: key.into(), reason };
        let mut member = self.archive.by_name(&name_in_zip).map_err(|e| error(e.to_string()))?;
        let header = npyz::NpyHeader::from_reader(&mut member).map_err(|e| error(e.to_string()))?;
        let probe = NpyFile::with_header(header.clone(), std::io::empty());
        if probe.order() != npyz::Order::C {
            return Err(error("Fortran-ordered arrays are not supported; save a C-contiguous array".into()));
        }
        let shape = probe.shape().to_vec();
        let name = dtype_name(&probe.dtype());
        let item_bytes: u64 = match name.as_str() {
            "uint8" => 1,
            "int32" | "float32" => 4,
            "int64" | "float64" => 8,
            other => return Err(error(format!("unsupported dtype {other}"))),
        };
        let limit = self.max_array_bytes;
        let needed = shape.iter().try_fold(item_bytes, |acc, &d| acc.checked_mul(d)).filter(|&n| n <= limit);
        let Some(needed) = needed else {
            return Err(error(format!(
                "header promises shape {shape:?} of {name}, larger than the limit of {limit} bytes"
            )));
        };
        if needed > self.budget {
            let (total, used) = (self.budget_total, self.budget_total - self.budget);
            return Err(error(format!(
                "shape {shape:?} of {name} needs {needed} bytes; with the {used} bytes of the arrays read before it, \
                 over the budget of {total} bytes for this archive"
            )));
        }
        self.budget -= needed;
        let mut data = Vec::new();
        member.take(needed.saturating_add(1)).read_to_end(&mut data).map_err(|e| error(e.to_string()))?;
        let got = data.len() as u64;
        if got < needed {
            return Err(error(format!(
                "header promises shape {shape:?} of {name}, but only {got} bytes of data follow (truncated?)"
            )));
        }
        if got > needed {
            return Err(error(format!(
                "the member holds more data than its header's shape {shape:?} of {name} ({needed} bytes)"
            )));
        }
        let npy = NpyFile::with_header(header, std::io::Cursor::new(data));
        let data = match name.as_str() {
            "uint8" => npy.into_vec().map(ArrayData::U8),
            "int32" => npy.into_vec().map(ArrayData::I32),
            "int64" => npy.into_vec().map(ArrayData::I64),
            "float32" => npy.into_vec().map(ArrayData::F32),
            _ => npy.into_vec().map(ArrayData::F64),
        }
        .map_err(|e| error(e.to_string()))?;
        Ok(Some(Array { shape, data }))
    }
}

/// Writes arrays into a new `.npz` archive (deflated, as `np.savez_compressed`).
///
/// The archive is first written next to `path` and renamed into place, so an existing file
/// is never left half-written.
pub fn write_npz(path: &Path, arrays: &[(&str, &Array)]) -> Result<()> {
    let io_err = |source| Error::Io { path: path.into(), source };
    let tmp = path.with_extension("npz.partial");
    let file = File::create(&tmp).map_err(io_err)?;
    let mut inner = write_npz_to(path, BufWriter::new(file), arrays)?;
    inner.flush().map_err(io_err)?;
    drop(inner);
    std::fs::rename(&tmp, path).map_err(io_err)
}

/// Writes arrays as an `.npz` archive into `w` (a file, or a buffer for a request body), `label`
/// naming it in errors; gives the writer back.
pub fn write_npz_to<W: Write + std::io::Seek>(label: &Path, w: W, arrays: &[(&str, &Array)]) -> Result<W> {
    let io_err = |source| Error::Io { path: label.into(), source };
    let mut zip = zip::ZipWriter::new(w);
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).large_file(true);
    let zip_err = |e: zip::result::ZipError| Error::Archive { path: label.into(), reason: e.to_string() };
    for (key, array) in arrays {
        zip.start_file(format!("{key}.npy"), options).map_err(zip_err)?;
        let mut bytes = Vec::new();
        write_npy(&mut std::io::Cursor::new(&mut bytes), array).map_err(io_err)?;
        zip.write_all(&bytes).map_err(io_err)?;
    }
    zip.finish().map_err(zip_err)
}

fn write_npy<W: Write + std::io::Seek>(w: W, array: &Array) -> std::io::Result<()> {
    macro_rules! write_typed {
        ($v:expr) => {{
            let mut writer = npyz::WriteOptions::new().default_dtype().shape(&array.shape).writer(w).begin_nd()?;
            writer.extend($v.iter().copied())?;
            writer.finish()
        }};
    }
    match &array.data {
        ArrayData::U8(v) => write_typed!(v),
        ArrayData::I32(v) => write_typed!(v),
        ArrayData::I64(v) => write_typed!(v),
        ArrayData::F32(v) => write_typed!(v),
        ArrayData::F64(v) => write_typed!(v),
    }
}

impl ArrayData {
    /// The NumPy dtype name.
    pub fn dtype(&self) -> &'static str {
        match self {
            ArrayData::U8(_) => "uint8",
            ArrayData::I32(_) => "int32",
            ArrayData::I64(_) => "int64",
            ArrayData::F32(_) => "float32",
            ArrayData::F64(_) => "float64",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_round_trip_through_an_archive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npz");
        let a = Array { shape: vec![2, 3], data: ArrayData::F32(vec![0.5, 1.0, -2.0, 3.25, 4.0, 5.0]) };
        let b = Array { shape: vec![4], data: ArrayData::U8(vec![1, 2, 3, 255]) };
        write_npz(&path, &[("a", &a), ("b", &b)]).unwrap();
        let mut r = NpzReader::open(&path).unwrap();
        assert_eq!(r.keys(), vec!["a", "b"]);
        assert_eq!(r.read("a").unwrap().unwrap(), a);
        assert_eq!(r.read("b").unwrap().unwrap(), b);
        assert!(r.read("c").unwrap().is_none());
        let infos = r.infos().unwrap();
        assert_eq!(infos[0].dtype, "float32");
        assert_eq!(infos[1].shape, vec![4]);
    }

    #[test]
    fn an_archive_in_memory_reads_like_a_file_and_its_arrays_are_capped() {
        let a = Array { shape: vec![1000], data: ArrayData::F32(vec![0.0; 1000]) };
        let label = Path::new("request body");
        let bytes = write_npz_to(label, std::io::Cursor::new(Vec::new()), &[("a", &a)]).unwrap().into_inner();
        assert!(bytes.len() < 1000, "zeros deflate: {} bytes", bytes.len());
        let mut r = NpzReader::from_reader(label, std::io::Cursor::new(&bytes), 8192).unwrap();
        assert_eq!(r.read("a").unwrap().unwrap(), a);
        let mut capped = NpzReader::from_reader(label, std::io::Cursor::new(&bytes), 1000).unwrap();
        let err = capped.read("a").unwrap_err().to_string();
        assert!(err.contains("request body") && err.contains("limit of 1000 bytes"), "{err}");
    }

    #[test]
    fn arrays_that_add_up_beyond_the_budget_are_refused_before_they_are_inflated() {
        let a = Array { shape: vec![100], data: ArrayData::F32(vec![0.0; 100]) };
        let label = Path::new("data.npz");
        let bytes =
            write_npz_to(label, std::io::Cursor::new(Vec::new()), &[("a", &a), ("b", &a)]).unwrap().into_inner();
        let mut r = NpzReader::from_reader(label, std::io::Cursor::new(&bytes), 1000).unwrap().with_budget(600);
        assert_eq!(r.read("a").unwrap().unwrap(), a);
        let err = r.read("b").unwrap_err().to_string();
        assert!(err.contains("data.npz") && err.contains("b") && err.contains("budget of 600 bytes"), "{err}");
        assert!(err.contains("400 bytes of the arrays read before"), "{err}");
        // within the budget both are read
        let mut r = NpzReader::from_reader(label, std::io::Cursor::new(&bytes), 1000).unwrap().with_budget(800);
        assert!(r.read("a").unwrap().is_some() && r.read("b").unwrap().is_some());
    }

    #[test]
    fn truncated_archive_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npz");
        let a = Array { shape: vec![1000], data: ArrayData::F32(vec![1.0; 1000]) };
        write_npz(&path, &[("a", &a)]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = NpzReader::open(&path).unwrap_err().to_string();
        assert!(err.contains("a.npz") && err.contains("truncated or corrupt"), "{err}");
    }

    #[test]
    fn a_header_promising_more_data_than_there_is_is_refused_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lie.npz");
        // a valid npy header for `n` float32 values, followed by 8 bytes of data
        let lie = |n: u64| {
            let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n},), }}");
            let mut npy = b"\x93NUMPY\x01\x00".to_vec();
            let pad = 64 - (10 + dict.len() + 1) % 64;
            let header = format!("{dict}{}\n", " ".repeat(pad));
            npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
            npy.extend_from_slice(header.as_bytes());
            npy.extend_from_slice(&[0; 8]);
            let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
            zip.start_file("sensor.npy", zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(&npy).unwrap();
            zip.finish().unwrap();
            NpzReader::open(&path).unwrap().read("sensor").unwrap_err().to_string()
        };
        // a million values: inflated up to what is there, then refused as truncated
        let err = lie(1_000_000);
        assert!(err.contains("'sensor'") && err.contains("only 8 bytes"), "{err}");
        // 10¹² values (4 TB): more than this machine could hold, refused on the header alone
        let err = lie(1_000_000_000_000);
        assert!(err.contains("'sensor'") && err.contains("4000000000000 bytes") && err.contains("budget"), "{err}");
    }

    #[test]
    fn a_member_inflating_beyond_its_header_stops_at_the_promise() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.npz");
        // a header for 4 float32 values, then 64 MiB of zeros (deflated to about 64 KiB), and a
        // second key nobody reads holding the same
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }";
        let pad = 64 - (10 + dict.len() + 1) % 64;
        let header = format!("{dict}{}\n", " ".repeat(pad));
        let zeros = vec![0u8; 1 << 20];
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        let deflated = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for key in ["sensor.npy", "hidden.npy"] {
            zip.start_file(key, deflated).unwrap();
            zip.write_all(b"\x93NUMPY\x01\x00").unwrap();
            zip.write_all(&(header.len() as u16).to_le_bytes()).unwrap();
            zip.write_all(header.as_bytes()).unwrap();
            for _ in 0..64 {
                zip.write_all(&zeros).unwrap();
            }
        }
        zip.finish().unwrap();
        let mut r = NpzReader::open(&path).unwrap();
        // the headers alone: shapes without inflating the data
        let infos = r.infos().unwrap();
        assert_eq!(infos.iter().map(|i| i.shape.clone()).collect::<Vec<_>>(), [vec![4], vec![4]]);
        let err = r.read("sensor").unwrap_err().to_string();
        assert!(err.contains("'sensor'") && err.contains("more data than its header"), "{err}");
    }
}
