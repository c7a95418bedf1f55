//! Import reads back what export wrote, a folder and CSV made by hand import to the arrays they
//! hold, and what cannot be aligned is reported, not imported.

use std::path::Path;

use mmguard_convert::{export, import, ImageTime, ImportConfig};
use mmguard_data::npz::{ArrayData, NpzReader};
use mmguard_data::Dataset;
use mmguard_twin::{SceneKind, TwinConfig, PHASE_KEY};

fn config(images: &Path, csv: &Path, labels: &[&str]) -> ImportConfig {
    ImportConfig {
        images: images.into(),
        csv: csv.into(),
        time_column: "time".into(),
        episode_column: "episode".into(),
        labels: labels.iter().map(|s| s.to_string()).collect(),
        image_time: ImageTime::FileName { scale: 1.0 },
        tolerance: None,
    }
}

#[test]
fn twin_data_survives_export_and_import() {
    let dir = tempfile::tempdir().unwrap();
    let npz = dir.path().join("weld.npz");
    let cfg = TwinConfig {
        scene: SceneKind::DualWeld,
        episodes: 3,
        samples_per_episode: 25,
        height: 32,
        width: 48,
        seed: 5,
        ..Default::default()
    };
    mmguard_twin::write(&cfg, &npz).unwrap();
    let original = Dataset::load(&npz).unwrap();
    let phase = NpzReader::open(&npz).unwrap().read(PHASE_KEY).unwrap().unwrap();
    let out = dir.path().join("export");
    let summary = export(&original, &[(PHASE_KEY.into(), phase.clone())], &out).unwrap();
    assert_eq!((summary.frames, summary.episodes), (75, 3));

    let imported = import(&config(&out.join("frames"), &out.join("sensors.csv"), &[PHASE_KEY])).unwrap();
    assert!(imported.report.dropped.is_empty(), "{:?}", imported.report.dropped);
    let ds = &imported.dataset;
    assert_eq!((ds.height, ds.width), (32, 48));
    assert_eq!(ds.camera, original.camera);
    assert_eq!(ds.sensor, original.sensor);
    assert_eq!(ds.episode, original.episode);
    assert_eq!(ds.time, original.time);
    assert_eq!(ds.columns, original.columns, "units come back from export.json");
    assert_eq!(imported.labels[0].1, phase);

    // and the imported file is a valid contract file
    let again = dir.path().join("again.npz");
    let labels: Vec<(&str, &_)> = imported.labels.iter().map(|(k, a)| (k.as_str(), a)).collect();
    ds.save(&again, &labels).unwrap();
    assert_eq!(Dataset::load(&again).unwrap().fingerprint(), original.fingerprint());
}

fn write_png(path: &Path, w: u32, h: u32, shade: u8) {
    let pixels: Vec<u8> = (0..w * h * 3).map(|k| shade.wrapping_add((k % 251) as u8)).collect();
    image::save_buffer(path, &pixels, w, h, image::ExtendedColorType::Rgb8).unwrap();
}

#[test]
fn a_hand_made_folder_is_aligned_by_time_and_what_cannot_be_aligned_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("cam");
    std::fs::create_dir(&images).unwrap();
    // frames at 0.0, 0.1, …, 0.5 s, names in milliseconds; one frame far from any reading
    for k in 0..6u32 {
        write_png(&images.join(format!("cam_{:06}.png", k * 100)), 16, 16, k as u8 * 40);
    }
    write_png(&images.join("cam_009900.png"), 16, 16, 7);
    std::fs::write(images.join("notes.txt"), "not a frame").unwrap();
    // readings with clock jitter, one broken row, one reading with no frame
    let csv = dir.path().join("plc.csv");
    std::fs::write(
        &csv,
        "time,torque,speed,phase\n\
         0.004,1.0,10,0\n\
         0.098,1.1,11,0\n\
         0.203,1.2,nan,1\n\
         0.301,1.3,13,1\n\
         0.399,1.4,14,2\n\
         0.502,1.5,15,2\n\
         3.000,9.9,99,0\n",
    )
    .unwrap();
    let mut cfg = config(&images, &csv, &["phase"]);
    cfg.image_time = ImageTime::FileName { scale: 0.001 };
    let got = import(&cfg).unwrap();
    let ds = &got.dataset;
    // the 0.2 s frame lost its reading (NaN), 9.9 s has no reading, 3.0 s has no frame
    assert_eq!(ds.len(), 5);
    assert_eq!(ds.time.as_deref().unwrap(), &[0.0, 0.1, 0.3, 0.4, 0.5]);
    assert_eq!(ds.sensor, vec![1.0, 10.0, 1.1, 11.0, 1.3, 13.0, 1.4, 14.0, 1.5, 15.0]);
    assert_eq!(ds.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["torque", "speed"]);
    assert_eq!(got.labels[0].1.data, ArrayData::I32(vec![0, 0, 1, 2, 2]));
    // the frame at 0.3 s is the fourth image written (shade 3 × 40)
    let first_pixel = |i: usize| ds.frame(i)[0];
    assert_eq!((first_pixel(0), first_pixel(2)), (0, 120));
    let count = |reason: &str| got.report.dropped.iter().find(|d| d.reason.starts_with(reason)).map_or(0, |d| d.count);
    assert_eq!(count("CSV value missing"), 1);
    assert_eq!(count("no reading within"), 2, "{:?}", got.report.dropped);
    assert_eq!(count("reading with no image"), 1);
    assert_eq!(count("not a PNG"), 1);
    let nan = got.report.dropped.iter().find(|d| d.reason.starts_with("CSV value")).unwrap();
    assert!(nan.examples[0].contains("line 4") && nan.examples[0].contains("speed"), "{:?}", nan.examples);
}

#[test]
fn unusable_input_is_refused_with_the_file_and_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("cam");
    std::fs::create_dir(&images).unwrap();
    write_png(&images.join("0.png"), 20, 16, 0);
    let csv = dir.path().join("s.csv");
    std::fs::write(&csv, "t,a\n0,1\n").unwrap();
    let e = import(&config(&images, &csv, &[])).unwrap_err().to_string();
    assert!(e.contains("s.csv") && e.contains("no time column 'time'") && e.contains("t, a"), "{e}");
    std::fs::write(&csv, "time,a\n0,1\n").unwrap();
    let e = import(&config(&images, &csv, &[])).unwrap_err().to_string();
    assert!(e.contains("0.png") && e.contains("20x16") && e.contains("16"), "{e}");
    let e = import(&config(&images, &csv, &["phase"])).unwrap_err().to_string();
    assert!(e.contains("no label column 'phase'"), "{e}");
}

#[test]
fn repeated_and_negative_time_stamps_lose_no_frame() {
    let dir = tempfile::tempdir().unwrap();
    let npz = dir.path().join("arm.npz");
    let cfg = TwinConfig { episodes: 2, samples_per_episode: 20, height: 16, width: 32, seed: 3, ..Default::default() };
    mmguard_twin::write(&cfg, &npz).unwrap();
    let mut original = Dataset::load(&npz).unwrap();
    // the contract allows equal time stamps (only backwards time is refused): pairs of samples
    // share one, and the clock starts before zero
    original.time = Some((0..original.len()).map(|i| ((i % 20) / 2) as f32 * 0.25 - 1.0).collect());
    let out = dir.path().join("export");
    let summary = export(&original, &[], &out).unwrap();
    assert_eq!(summary.frames, 40);
    let files: usize = std::fs::read_dir(out.join("frames"))
        .unwrap()
        .map(|e| std::fs::read_dir(e.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(files, 40, "one file per frame");

    let imported = import(&config(&out.join("frames"), &out.join("sensors.csv"), &[])).unwrap();
    assert!(imported.report.dropped.is_empty(), "{:?}", imported.report.dropped);
    let ds = &imported.dataset;
    assert_eq!(ds.time, original.time);
    assert_eq!(ds.episode, original.episode);
    assert_eq!(ds.camera, original.camera, "frames in sample order");
    assert_eq!(ds.sensor, original.sensor, "each frame with its own reading");
}
