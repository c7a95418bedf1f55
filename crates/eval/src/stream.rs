//! Detection on a stream whose faults start during operation: a file made by
//! `mmguard faults inject`, with the per-sample fault level of each modality as ground truth.
//! How often the gate flags a faulty window, how often a healthy one, and how many readings
//! after the onset it takes to notice.

use mmguard_data::Dataset;
use mmguard_faults::Modality;
use mmguard_model::compute;
use mmguard_model::{host_batch, Run, Thresholds};
use serde::Serialize;

use crate::evaluate::eval_windows;
use crate::metrics::auroc;
use crate::{Error, Result};

/// Detection of one modality over the stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamDetection {
    /// The modality.
    pub modality: Modality,
    /// Faulty windows: the camera's last frame, or any of the sensor window's readings, has a
    /// fault level above 0.
    pub faulty_windows: usize,
    /// Healthy windows: no reading of the window has a fault level above 0.
    pub healthy_windows: usize,
    /// Windows left out of both: a fault level above 0 but none above the minimum level
    /// (`evaluate_stream`'s `min_level`; always 0 where it is 0).
    pub faint_windows: usize,
    /// AUROC of the modality's gate margin, faulty against healthy windows.
    pub auroc: Option<f64>,
    /// Share of faulty windows flagged.
    pub detected: f64,
    /// Share of healthy windows flagged (false alarms).
    pub false_alarms: f64,
    /// Episodes in which the fault occurs.
    pub faulty_episodes: usize,
    /// Of those, episodes in which the gate never flagged the fault.
    pub missed_episodes: usize,
    /// Mean readings from the first faulty window to the first flagged one, over the episodes
    /// where it was flagged.
    pub mean_delay_readings: Option<f64>,
}

/// The stream evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    /// The data file.
    pub data: String,
    /// Windows evaluated.
    pub windows: usize,
    /// Gate thresholds used.
    pub thresholds: Thresholds,
    /// A window counts as faulty where a reading's fault level exceeds this.
    pub min_level: f32,
    /// Camera, then sensor.
    pub modalities: Vec<StreamDetection>,
}

/// Runs the pipeline over every window of `data` and scores its flags against `levels`
/// (camera, sensor; one per sample, 0 = healthy). A window is faulty where one of its readings'
/// levels exceeds `min_level`; with `min_level` above 0, windows whose levels are above 0 but
/// none above it are left out of both classes. Why: where a stream's level says how much the
/// fault changed a reading (`tools/outside_data.py`: the largest change of any column, as a
/// share of its range), a fault that is active but changed the window by less than a
/// sensor's own resolution cannot be detected by anything, and counting it hides how well
/// the changes that can be seen are caught.
pub fn evaluate_stream(
    run: &Run,
    data: &Dataset,
    levels: &[Vec<f32>; 2],
    threshold: Option<f32>,
    min_level: f32,
) -> Result<StreamReport> {
    run.check_compatible(data)?;
    if levels.iter().any(|l| l.len() != data.len()) {
        return Err(Error::Empty(format!(
            "{}: fault levels hold {} and {} values for {} samples",
            data.path.display(),
            levels[0].len(),
            levels[1].len(),
            data.len()
        )));
    }
    let (windows, _) = eval_windows(run, data)?;
    let device = compute::device();
    let mc = &run.config.model;
    let gate = run.config.gate.thresholds();
    let thresholds = threshold.map_or(gate, |t| gate.with_scores(t));
    // the gate's margins, which the AUROC ranks
    let mut scores: Vec<[f32; 2]> = Vec::with_capacity(windows.count());
    // the gate's own flags: the scores against their thresholds and the sensor's novelty
    let mut flags: Vec<[bool; 2]> = Vec::with_capacity(windows.count());
    for chunk in windows.ends.chunks(64) {
        let batch = host_batch(data, chunk, mc.stage1.window, &run.config.normalization);
        let inference = run.model.infer(mc, &batch, thresholds, &device);
        scores.extend(inference.margins);
        flags.extend(inference.flags);
    }
    let modalities = [Modality::Camera, Modality::Sensor]
        .into_iter()
        .enumerate()
        .map(|(m, modality)| {
            // a frame is judged alone; a sensor window holds faulty data if any of its readings does
            let reach = if modality == Modality::Sensor { windows.len } else { 1 };
            let level = |i: usize| levels[m][i + 1 - reach..=i].iter().fold(0.0f32, |a, &l| a.max(l));
            let class: Vec<Option<bool>> = windows
                .ends
                .iter()
                .map(|&i| match level(i) {
                    l if l > min_level => Some(true),
                    l if l > 0.0 => None,
                    _ => Some(false),
                })
                .collect();
            let kept: Vec<usize> = (0..class.len()).filter(|&k| class[k].is_some()).collect();
            let faulty: Vec<bool> = class.iter().map(|c| *c == Some(true)).collect();
            let score: Vec<f32> = kept.iter().map(|&k| scores[k][m]).collect();
            let labels: Vec<bool> = kept.iter().map(|&k| faulty[k]).collect();
            let flagged: Vec<bool> = flags.iter().map(|f| f[m]).collect();
            let count = |want: bool| class.iter().filter(|&&c| c == Some(want)).count();
            let share = |want: bool| {
                let n = class.iter().zip(&flagged).filter(|(&c, &g)| c == Some(want) && g).count();
                n as f64 / count(want).max(1) as f64
            };
            // per episode: the first faulty window, then the first flagged one from there on
            let mut delays = Vec::new();
            let (mut faulty_episodes, mut missed) = (0, 0);
            let mut k = 0;
            while k < windows.ends.len() {
                let episode = data.episode[windows.ends[k]];
                let end = (k..windows.ends.len())
                    .find(|&j| data.episode[windows.ends[j]] != episode)
                    .unwrap_or(windows.ends.len());
                if let Some(onset) = (k..end).find(|&j| faulty[j]) {
                    faulty_episodes += 1;
                    match (onset..end).find(|&j| flagged[j]) {
                        Some(hit) => delays.push((windows.ends[hit] - windows.ends[onset]) as f64),
                        None => missed += 1,
                    }
                }
                k = end;
            }
            StreamDetection {
                modality,
                faulty_windows: count(true),
                healthy_windows: count(false),
                faint_windows: class.len() - kept.len(),
                auroc: auroc(&score, &labels),
                detected: share(true),
                false_alarms: share(false),
                faulty_episodes,
                missed_episodes: missed,
                mean_delay_readings: (!delays.is_empty()).then(|| delays.iter().sum::<f64>() / delays.len() as f64),
            }
        })
        .collect();
    Ok(StreamReport {
        data: data.path.display().to_string(),
        windows: windows.count(),
        thresholds,
        min_level,
        modalities,
    })
}

impl StreamReport {
    /// The report as a Markdown table.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "Stream detection on {} ({} windows), thresholds {}, faulty above level {}\n\n| modality | faulty windows | healthy windows | left out (faint) | AUROC | detected | false alarms | faulty episodes | missed | mean delay (readings) |\n|---|---|---|---|---|---|---|---|---|---|\n",
            self.data, self.windows, self.thresholds, self.min_level
        );
        for d in &self.modalities {
            s += &format!(
                "| {:?} | {} | {} | {} | {} | {:.3} | {:.3} | {} | {} | {} |\n",
                d.modality,
                d.faulty_windows,
                d.healthy_windows,
                d.faint_windows,
                d.auroc.map_or("–".into(), |v| format!("{v:.4}")),
                d.detected,
                d.false_alarms,
                d.faulty_episodes,
                d.missed_episodes,
                d.mean_delay_readings.map_or("–".into(), |v| format!("{v:.1}"))
            );
        }
        s
    }
}
