//! `mmguard faults list|preview`

use anyhow::{bail, Context};
use mmguard_data::npz::{Array, ArrayData, NpzReader};
use mmguard_data::Dataset;
use mmguard_faults::inject::{Injection, Shape, LEVEL_KEYS};
use mmguard_faults::preview::{camera_grid, sensor_traces};
use mmguard_faults::{CameraFault, SensorFault};
use mmguard_plot::{panels_png, tiles_png, Grid, Panel, Series, Tiles};

use crate::args::{FaultsCommand, InjectArgs, Pattern, PreviewArgs};

pub fn run(c: FaultsCommand) -> anyhow::Result<()> {
    match c {
        FaultsCommand::List => {
            println!("camera: {}", CameraFault::ALL.map(CameraFault::name).join(", "));
            println!("sensor: {}", SensorFault::ALL.map(SensorFault::name).join(", "));
            Ok(())
        }
        FaultsCommand::Preview(a) => preview(a),
        FaultsCommand::Inject(a) => inject(a),
    }
}

fn preview(a: PreviewArgs) -> anyhow::Result<()> {
    let data = super::load_dataset(&a.data)?;
    if a.sample >= data.len() {
        bail!("--sample {}: {} holds {} samples", a.sample, a.data.display(), data.len());
    }
    let mut frame = vec![0.0; data.frame_len()];
    let mut previous = vec![0.0; data.frame_len()];
    data.scaled_frame_into(a.sample, &mut frame);
    data.scaled_frame_into(a.sample.saturating_sub(5), &mut previous);
    // the sensor plot is prepared first: a bad --column writes nothing
    let sensor = sensor_panels(&data, &a)?;
    let severities = [0.0, 0.25, 0.5, 0.75, 1.0];
    let grid = camera_grid(&frame, &previous, data.height, data.width, &severities, a.seed);
    tiles_png(
        &a.out,
        &Tiles {
            rgb: &grid.pixels,
            width: grid.width,
            height: grid.height,
            title: format!("camera fault (row) at severity (column), sample {}", a.sample),
            rows: CameraFault::ALL.map(|f| format!("camera/{}", f.name())).to_vec(),
            columns: severities.map(|s| s.to_string()).to_vec(),
        },
    )?;
    tracing::info!(
        "wrote {}: {} camera faults (rows: {}) × severities 0, 0.25, 0.5, 0.75, 1",
        a.out.display(),
        CameraFault::ALL.len(),
        CameraFault::ALL.map(CameraFault::name).join(", ")
    );
    panels_png(&a.sensor_out, &sensor.panels, Grid { columns: 4, panel_width: 360, panel_height: 230 })?;
    tracing::info!(
        "wrote {}: {} sensor faults and 3 temporal patterns on {} over episode {}, from a quarter of it on",
        a.sensor_out.display(),
        SensorFault::ALL.len(),
        sensor.column,
        sensor.episode
    );
    Ok(())
}

/// The sensor plot's panels, the column they show and the episode.
struct SensorPanels {
    panels: Vec<Panel>,
    column: String,
    episode: i32,
}

/// Every sensor fault on one channel of the sample's episode, on the [0, 1] scale of the file's
/// own range.
fn sensor_panels(data: &Dataset, a: &PreviewArgs) -> anyhow::Result<SensorPanels> {
    let d = data.sensor_dim();
    let episode = data.episode[a.sample];
    let rows: Vec<usize> = (0..data.len()).filter(|&i| data.episode[i] == episode).collect();
    let reading = |i: usize| &data.sensor[i * data.sensor.len() / data.len()..][..d];
    let (mut lo, mut hi) = (vec![f32::INFINITY; d], vec![f32::NEG_INFINITY; d]);
    for i in 0..data.len() {
        for (c, &v) in reading(i).iter().enumerate() {
            lo[c] = lo[c].min(v);
            hi[c] = hi[c].max(v);
        }
    }
    let scaled: Vec<f32> = rows
        .iter()
        .flat_map(|&i| {
            reading(i).iter().enumerate().map(|(c, &v)| if hi[c] > lo[c] { (v - lo[c]) / (hi[c] - lo[c]) } else { 0.5 })
        })
        .collect();
    let column = match &a.column {
        Some(name) => data.columns.iter().position(|c| &c.name == name).with_context(|| {
            format!("--column {name}: not a column of {}; columns: {}", a.data.display(), column_names(data))
        })?,
        None => (0..d)
            .max_by(|&x, &y| spread(&scaled, d, x).total_cmp(&spread(&scaled, d, y)))
            .context("the file has no sensor column")?,
    };
    let panels: Vec<Panel> = sensor_traces(&scaled, d, column, &[0.5, 1.0], a.seed)
        .into_iter()
        .map(|t| {
            let line = |label: String, v: &[f32]| Series {
                label,
                points: v.iter().enumerate().map(|(k, &y)| (k as f64, f64::from(y))).collect(),
            };
            let mut series = vec![line("clean".into(), &t.clean)];
            series.extend(t.faulty.iter().map(|(s, v)| line(format!("severity {s}"), v)));
            Panel {
                title: t.title,
                x_label: "reading".into(),
                y_label: data.columns[column].name.clone(),
                log_y: false,
                y_range: None,
                series,
            }
        })
        .collect();
    Ok(SensorPanels { panels, column: data.columns[column].name.clone(), episode })
}

fn column_names(data: &Dataset) -> String {
    data.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// Standard deviation of column `c` of time-major readings with `d` columns.
fn spread(x: &[f32], d: usize, c: usize) -> f64 {
    let v: Vec<f64> = x.iter().skip(c).step_by(d).map(|&v| f64::from(v)).collect();
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

fn inject(a: InjectArgs) -> anyhow::Result<()> {
    let data = super::load_dataset(&a.data)?;
    let shape = match a.pattern {
        Pattern::Permanent => Shape::Permanent,
        Pattern::Intermittent => Shape::Intermittent { period: a.period, duty: a.duty },
        Pattern::Growing => Shape::Growing,
    };
    let injection =
        Injection { faults: a.fault, severity: a.severity, onset: a.onset, duration: a.duration, shape, seed: a.seed };
    let got = mmguard_faults::inject::inject(&data, &injection)?;
    // per-sample arrays of the input (labels) travel along with the fault levels
    let n = data.len() as u64;
    let mut reader = NpzReader::open(&a.data)?;
    let mut extra: Vec<(String, Array)> = Vec::new();
    for info in data.extra_keys.iter().filter(|k| k.shape == [n] && !LEVEL_KEYS.contains(&k.key.as_str())) {
        if let Some(array) = reader.read(&info.key)? {
            extra.push((info.key.clone(), array));
        }
    }
    for (key, level) in LEVEL_KEYS.iter().zip(&got.levels) {
        extra.push((key.to_string(), Array { shape: vec![n], data: ArrayData::F32(level.clone()) }));
    }
    let refs: Vec<(&str, &Array)> = extra.iter().map(|(k, v)| (k.as_str(), v)).collect();
    got.dataset.save(&a.out, &refs)?;
    let faulty = |m: usize| got.levels[m].iter().filter(|&&l| l > 0.0).count();
    println!(
        "wrote {}: {} samples, camera faulty in {}, sensor faulty in {} (keys {} and {})",
        a.out.display(),
        data.len(),
        faulty(0),
        faulty(1),
        LEVEL_KEYS[0],
        LEVEL_KEYS[1]
    );
    Ok(())
}
