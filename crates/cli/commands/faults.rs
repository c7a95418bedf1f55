//! `mmguard faults list|preview`

use std::fs::File;
use std::io::BufWriter;

use anyhow::{bail, Context};
use mmguard_faults::preview::camera_grid;
use mmguard_faults::{CameraFault, SensorFault};

use crate::args::{FaultsCommand, PreviewArgs};

pub fn run(c: FaultsCommand) -> anyhow::Result<()> {
    match c {
        FaultsCommand::List => {
            println!("camera: {}", CameraFault::ALL.map(CameraFault::name).join(", "));
            println!("sensor: {}", SensorFault::ALL.map(SensorFault::name).join(", "));
            Ok(())
        }
        FaultsCommand::Preview(a) => preview(a),
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
    let grid = camera_grid(&frame, &previous, data.height, data.width, &[0.0, 0.25, 0.5, 0.75, 1.0], a.seed);
    let file = File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), grid.width as u32, grid.height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(&grid.pixels))
        .with_context(|| format!("writing {}", a.out.display()))?;
    tracing::info!(
        "wrote {}: {} camera faults (rows: {}) × severities 0, 0.25, 0.5, 0.75, 1",
        a.out.display(),
        CameraFault::ALL.len(),
        CameraFault::ALL.map(CameraFault::name).join(", ")
    );
    Ok(())
}
