//! Every violation of the data contract is a clear error naming file, key, expected and found.

use mmguard_data::npz::{write_npz, Array, ArrayData};
use mmguard_data::{read_class_labels, Dataset, SensorLayout};
use std::path::{Path, PathBuf};

fn camera(n: u64, h: u64, w: u64) -> Array {
    Array { shape: vec![n, 3, h, w], data: ArrayData::U8(vec![7; (n * 3 * h * w) as usize]) }
}

fn sensor(n: u64, d: u64) -> Array {
    Array { shape: vec![n, d], data: ArrayData::F32((0..n * d).map(|v| v as f32).collect()) }
}

fn episode(ids: Vec<i32>) -> Array {
    Array { shape: vec![ids.len() as u64], data: ArrayData::I32(ids) }
}

fn write(dir: &Path, arrays: &[(&str, &Array)]) -> PathBuf {
    let path = dir.join("d.npz");
    write_npz(&path, arrays).unwrap();
    path
}

fn load_err(path: &Path) -> String {
    Dataset::load(path).unwrap_err().to_string()
}

#[test]
fn a_valid_file_loads_with_generic_column_names_and_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        &[("camera", &camera(4, 16, 32)), ("sensor", &sensor(4, 3)), ("phase", &episode(vec![0; 4]))],
    );
    let ds = Dataset::load(&p).unwrap();
    assert_eq!((ds.len(), ds.height, ds.width, ds.sensor_dim()), (4, 16, 32, 3));
    assert_eq!(ds.layout, SensorLayout::Readings);
    assert_eq!(ds.columns[2].name, "s2");
    assert!(ds.warnings[0].contains("no sidecar"), "{:?}", ds.warnings);
    assert_eq!(ds.extra_keys[0].key, "phase");
}

#[test]
fn save_then_load_gives_the_same_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        &[("camera", &camera(6, 16, 16)), ("sensor", &sensor(6, 2)), ("episode", &episode(vec![3, 3, 3, 1, 1, 1]))],
    );
    let mut ds = Dataset::load(&p).unwrap();
    ds.columns[0].name = "torque".into();
    ds.columns[0].unit = "N m".into();
    let q = dir.path().join("copy.npz");
    ds.save(&q, &[]).unwrap();
    let back = Dataset::load(&q).unwrap();
    assert_eq!(back.camera, ds.camera);
    assert_eq!(back.sensor, ds.sensor);
    assert_eq!(back.episode, ds.episode);
    assert_eq!(back.columns, ds.columns);
    assert!(back.warnings.is_empty());
    assert_eq!(back.fingerprint(), ds.fingerprint());
}

#[test]
fn missing_key_names_the_key_and_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), &[("camera", &camera(2, 16, 16))]);
    let e = load_err(&p);
    assert!(
        e.contains("d.npz") && e.contains("missing key 'sensor'") && e.contains("float32") && e.contains("camera"),
        "{e}"
    );
}

#[test]
fn wrong_dtype_names_expected_and_found() {
    let dir = tempfile::tempdir().unwrap();
    let s64 = Array { shape: vec![2, 3], data: ArrayData::F64(vec![0.0; 6]) };
    let p = write(dir.path(), &[("camera", &camera(2, 16, 16)), ("sensor", &s64)]);
    let e = load_err(&p);
    assert!(e.contains("'sensor'") && e.contains("expected dtype float32, found float64"), "{e}");
    let cam_f = Array { shape: vec![2, 3, 16, 16], data: ArrayData::F32(vec![0.0; 1536]) };
    let p = write(dir.path(), &[("camera", &cam_f), ("sensor", &sensor(2, 3))]);
    assert!(load_err(&p).contains("expected dtype uint8, found float32"));
}

#[test]
fn mismatched_sample_counts_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), &[("camera", &camera(3, 16, 16)), ("sensor", &sensor(4, 3))]);
    let e = load_err(&p);
    assert!(e.contains("'sensor'") && e.contains("N = 3") && e.contains("[4, 3]"), "{e}");
    let p = write(
        dir.path(),
        &[("camera", &camera(3, 16, 16)), ("sensor", &sensor(3, 3)), ("episode", &episode(vec![0, 0]))],
    );
    assert!(load_err(&p).contains("'episode'"));
}

#[test]
fn image_size_the_encoder_cannot_take_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), &[("camera", &camera(2, 20, 16)), ("sensor", &sensor(2, 3))]);
    let e = load_err(&p);
    assert!(e.contains("multiples of 16") && e.contains("20x16"), "{e}");
    let gray = Array { shape: vec![2, 1, 16, 16], data: ArrayData::U8(vec![0; 512]) };
    let p = write(dir.path(), &[("camera", &gray), ("sensor", &sensor(2, 3))]);
    assert!(load_err(&p).contains("[N, 3, H, W]"));
}

#[test]
fn non_contiguous_episodes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        &[("camera", &camera(5, 16, 16)), ("sensor", &sensor(5, 2)), ("episode", &episode(vec![0, 0, 1, 1, 0]))],
    );
    let e = load_err(&p);
    assert!(e.contains("episode 0 is not contiguous") && e.contains("sample 4"), "{e}");
}

#[test]
fn non_finite_readings_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut v: Vec<f32> = vec![1.0; 12];
    v[5] = f32::NAN;
    v[7] = f32::NAN;
    v[9] = f32::INFINITY;
    let s = Array { shape: vec![4, 3], data: ArrayData::F32(v) };
    let p = write(dir.path(), &[("camera", &camera(4, 16, 16)), ("sensor", &s)]);
    let e = load_err(&p);
    assert!(e.contains("2 NaN and 1 infinite") && e.contains("row 1, column 2"), "{e}");
}

#[test]
fn time_going_backwards_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = Array { shape: vec![3], data: ArrayData::F32(vec![0.0, 0.1, 0.05]) };
    let p = write(dir.path(), &[("camera", &camera(3, 16, 16)), ("sensor", &sensor(3, 2)), ("t", &t)]);
    assert!(load_err(&p).contains("time goes backwards"));
}

#[test]
fn truncated_and_garbage_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), &[("camera", &camera(40, 64, 64)), ("sensor", &sensor(40, 18))]);
    let bytes = std::fs::read(&p).unwrap();
    for cut in [10, bytes.len() / 3, bytes.len() - 30] {
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let e = load_err(&p);
        assert!(e.contains("d.npz"), "{e}");
    }
    std::fs::write(&p, b"this is not a zip file at all").unwrap();
    assert!(load_err(&p).contains("not a readable .npz"));
    assert!(load_err(&dir.path().join("absent.npz")).contains("absent.npz"));
}

#[test]
fn ready_made_windows_are_accepted_and_their_length_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let s = Array { shape: vec![3, 8, 2], data: ArrayData::F32(vec![0.5; 48]) };
    let p = write(dir.path(), &[("camera", &camera(3, 16, 16)), ("sensor", &s)]);
    let ds = Dataset::load(&p).unwrap();
    assert_eq!(ds.layout, SensorLayout::Windows { len: 8 });
    assert_eq!(ds.windows(8, &[0]).unwrap().count(), 3);
    assert!(ds.windows(16, &[0]).unwrap_err().to_string().contains("ready-made windows of 8"));
}

#[test]
fn files_written_by_numpy_load_stored_and_deflated() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for name in ["numpy_stored.npz", "numpy_deflated.npz"] {
        let ds = Dataset::load(&dir.join(name)).unwrap();
        assert_eq!((ds.len(), ds.height, ds.width, ds.sensor_dim()), (6, 16, 16, 2), "{name}");
        assert_eq!(ds.frame(1)[0], (3 * 16 * 16 % 256) as u8);
        assert_eq!(ds.sensor[5], 1.25);
        assert_eq!(ds.episode_ids(), vec![0, 1]);
        assert_eq!(ds.time.as_ref().unwrap()[4], 0.05);
        assert_eq!(ds.columns[1].name, "speed");
        assert_eq!(ds.metadata["cell"], "fixture");
        assert!(ds.warnings.is_empty());
    }
    let ds = Dataset::load(&dir.join("numpy_deflated.npz")).unwrap();
    assert_eq!(ds.extra_keys[0].key, "phase");
    assert_eq!(ds.extra_keys[0].dtype, "int64");
}

#[test]
fn class_labels_are_read_with_names_and_bad_ones_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        &[("camera", &camera(4, 16, 16)), ("sensor", &sensor(4, 2)), ("phase", &episode(vec![0, 2, 1, 2]))],
    );
    let mut ds = Dataset::load(&p).unwrap();
    let labels = read_class_labels(&ds, "phase").unwrap();
    assert_eq!((labels.values.clone(), labels.classes), (vec![0, 2, 1, 2], 3));
    assert_eq!(labels.names, ["0", "1", "2"]);
    ds.metadata.insert("phases".into(), serde_json::json!(["idle", "move", "push"]));
    assert_eq!(read_class_labels(&ds, "phase").unwrap().names, ["idle", "move", "push"]);

    let err = read_class_labels(&ds, "grade").unwrap_err().to_string();
    assert!(err.contains("missing key 'grade'") && err.contains("phase"), "{err}");
    let bad = |arrays: &[(&str, &Array)], key: &str| {
        let base: [(&str, &Array); 2] = [("camera", &camera(4, 16, 16)), ("sensor", &sensor(4, 2))];
        let all: Vec<(&str, &Array)> = base.iter().copied().chain(arrays.iter().copied()).collect();
        let ds = Dataset::load(&write(dir.path(), &all)).unwrap();
        read_class_labels(&ds, key).unwrap_err().to_string()
    };
    let floats = Array { shape: vec![4], data: ArrayData::F32(vec![0.0; 4]) };
    assert!(bad(&[("phase", &floats)], "phase").contains("expected dtype uint8, int32 or int64, found float32"));
    let short = episode(vec![0, 1, 2]);
    assert!(bad(&[("phase", &short)], "phase").contains("expected shape [4] (one label per sample)"));
    let negative = episode(vec![0, 1, -1, 0]);
    assert!(bad(&[("phase", &negative)], "phase").contains("sample 2 has -1"));
}
