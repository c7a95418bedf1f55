//! Command-line flags. Doc comments are the help text.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use mmguard_bench::Method;
use mmguard_model::{Calibration, Novelty};
use mmguard_robust::HeadMethod;
use mmguard_twin::SceneKind;

/// Detect and correct faulty camera and sensor modalities in industrial robot cells (MMSSL).
#[derive(Debug, Parser)]
#[command(name = "mmguard", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a dataset with a digital twin (arm pushing an object, or dual-arm welding cell).
    Generate(GenerateArgs),
    /// Show what a dataset file holds: shapes, columns, episodes, per-column statistics.
    Inspect(InspectArgs),
    /// Build a dataset from a folder of images and a CSV of readings, aligned by time stamp.
    Import(ImportArgs),
    /// Write a dataset's frames as PNG files and its readings as CSV.
    Export(ExportArgs),
    /// Train MMSSL (stage 1 + stage 2) and write a run directory.
    Train(TrainArgs),
    /// Evaluate a run on a dataset with the test faults.
    Eval(EvalArgs),
    /// Recalibrate a run's gate on its clean validation episodes (no retraining).
    Calibrate(CalibrateArgs),
    /// The fault catalogue.
    #[command(subcommand)]
    Faults(FaultsCommand),
    /// Generate twin data, train, evaluate and write a report into one folder.
    Demo(DemoArgs),
    /// Compare methods (MMSSL, baselines) over seeds and write a report, or measure speed.
    Bench(BenchArgs),
    /// Train downstream heads robust to missing and faulty modalities (Robult, ModalImmune and
    /// their ablations) on a run's frozen encoders, and score them with a modality missing,
    /// under faults, and behind MMSSL's gate.
    Robust(RobustArgs),
    /// Serve a run over HTTP: rule checks, MMSSL's gate and corrector, a status per channel.
    Serve(ServeArgs),
    /// Drive a running server with real samples at fixed request rates; print and write
    /// throughput, latency percentiles, errors and the server's memory.
    Loadtest(LoadtestArgs),
    /// Write the body of an inference request for samples of a dataset, shaped for a running
    /// server (for curl or your own client).
    Request(RequestArgs),
}

/// `mmguard serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The run directory to serve.
    #[arg(long)]
    pub run: PathBuf,
    /// A TOML file with the service's settings (listen, [limits], [batching], [rules]); the
    /// options below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080: loopback unless told otherwise).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Largest request body, bytes (default 16 MiB).
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
    /// Most samples in one request (default 256).
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// Longest a model batch waits for more requests, microseconds (default 0: run what is
    /// queued).
    #[arg(long)]
    pub max_wait_us: Option<u64>,
    /// Threads running model calls (default one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Bearer token the admin endpoints (`PUT /v1/threshold`, `POST /v1/reload`) require; also
    /// read from MMGUARD_ADMIN_TOKEN. Without one they are closed (403) unless --admin-open.
    #[arg(long, env = "MMGUARD_ADMIN_TOKEN")]
    pub admin_token: Option<String>,
    /// Open the admin endpoints without a token to anyone who reaches the port (a web page in a
    /// local browser included); logged as a warning.
    #[arg(long)]
    pub admin_open: bool,
    /// Seconds admitted requests get to finish after SIGINT/SIGTERM before the server exits
    /// (default 30).
    #[arg(long)]
    pub drain_deadline_s: Option<f64>,
}

/// `mmguard loadtest`
#[derive(Debug, Args)]
pub struct LoadtestArgs {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A dataset whose frames and windows fit the served run (e.g. the run's own data.npz).
    #[arg(long)]
    pub data: PathBuf,
    /// Requests per second; a list runs one test per rate, in order.
    #[arg(long, value_delimiter = ',', default_value = "100")]
    pub rate: Vec<f64>,
    /// Seconds of load per rate.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Samples per request.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Client threads, each with its own keep-alive connection.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Body encoding: json (raw uint8 frames), png (JSON with base64 PNG frames) or npz.
    #[arg(long, value_enum, default_value = "json")]
    pub body: BodyArg,
    /// Where to write the reports (JSON).
    #[arg(long, default_value = "loadtest.json")]
    pub out: PathBuf,
}

/// `mmguard request`
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Base URL of the server (asked for the sample shape it takes).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A dataset whose frames and windows fit the served run.
    #[arg(long)]
    pub data: PathBuf,
    /// Sample (frame index) whose window ends the first sample of the request; default the
    /// first sample with a full window.
    #[arg(long)]
    pub index: Option<usize>,
    /// Samples in the request (consecutive windows from --index).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Body encoding: json (raw uint8 frames), png (JSON with base64 PNG frames) or npz.
    #[arg(long, value_enum, default_value = "png")]
    pub body: BodyArg,
    /// Where to write the body (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `--body`
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BodyArg {
    /// JSON with raw uint8 frames.
    Json,
    /// JSON with base64 PNG frames.
    Png,
    /// application/x-npz.
    Npz,
}

impl From<BodyArg> for mmguard_loadtest::BodyKind {
    fn from(b: BodyArg) -> Self {
        match b {
            BodyArg::Json => Self::Json,
            BodyArg::Png => Self::Png,
            BodyArg::Npz => Self::Npz,
        }
    }
}

/// `mmguard robust`
#[derive(Debug, Args)]
pub struct RobustArgs {
    /// A trained MMSSL run: its frozen stage-1 encoders feed the heads, its gate routes faulty
    /// inputs.
    #[arg(long)]
    pub run: PathBuf,
    /// The run's training file (default: the path the run recorded).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Archive key of the integer class labels.
    #[arg(long, default_value = "phase")]
    pub label_key: String,
    /// Sensor column whose next reading is the regression target (default: the first).
    #[arg(long)]
    pub regression_column: Option<String>,
    /// Heads: `all` or a comma list (robult-fine-tuned, not in `all`, tunes the encoders too).
    #[arg(long, value_delimiter = ',', default_value = "all", value_parser = heads())]
    pub methods: Vec<Pick<HeadMethod>>,
    /// Seeds per head.
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// Shares of training labels for Robult and its reference.
    #[arg(long, value_delimiter = ',', default_value = "0.01,0.05,0.5,1")]
    pub label_fractions: Vec<f64>,
    /// Training epochs of every head.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Study configuration JSON (every option of the heads; flags given here override it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Report folder: report.md, results.json (with every training log), missing.png, labels.png,
    /// faults.png.
    #[arg(long, default_value = "report-robust")]
    pub out: PathBuf,
}

/// `mmguard generate`
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The cell: `arm` (one arm pushing an object) or `dual-weld` (two arms welding a seam,
    /// with process signals).
    #[arg(long, default_value = "arm", value_parser = parse_scene)]
    pub scene: SceneKind,
    /// Output file (.npz); the sidecar goes next to it (.json). Default: data/<scene>.npz.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Number of episodes.
    #[arg(long, default_value_t = 40)]
    pub episodes: usize,
    /// Samples per episode (at 20 Hz).
    #[arg(long, default_value_t = 100)]
    pub samples: usize,
    /// Frame height (multiple of 16).
    #[arg(long, default_value_t = 64)]
    pub height: usize,
    /// Frame width (multiple of 16).
    #[arg(long, default_value_t = 64)]
    pub width: usize,
    /// Seed; the same seed gives the same file.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// How an injected fault runs over its active stretch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Pattern {
    /// On for the whole stretch.
    Permanent,
    /// On and off in cycles (see --period, --duty).
    Intermittent,
    /// Ramps to full severity over the stretch.
    Growing,
}

/// A name of a closed set, or `all` of it, in a comma list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick<T> {
    /// Every member the set's `all` stands for.
    All,
    /// This one.
    One(T),
}

/// The members the picks name, in order, each once; `all` stands for `all`.
pub fn expand<T: Copy + PartialEq>(picks: &[Pick<T>], all: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for pick in picks {
        let add: &[T] = match pick {
            Pick::All => all,
            Pick::One(t) => std::slice::from_ref(t),
        };
        for &t in add {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

/// A value of a closed set by its name: clap lists the names in the help and refuses any other
/// naming them, so the set's own list is the only one.
fn one_of<T: Copy + Send + Sync + 'static>(
    set: &'static [T],
    name: fn(T) -> &'static str,
) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(set.iter().map(|&t| name(t)))
        .map(move |s| *set.iter().find(|&&t| name(t) == s).expect("clap admits only the listed names"))
}

/// `all` (of `all`) or a member of `all` or `extra` by its name.
fn pick<T: Copy + Send + Sync + 'static>(
    all: &'static [T],
    extra: &'static [T],
    name: fn(T) -> &'static str,
) -> impl TypedValueParser<Value = Pick<T>> {
    let set = move || all.iter().chain(extra).copied();
    PossibleValuesParser::new(std::iter::once("all").chain(set().map(name)))
        .map(move |s| set().find(|&t| name(t) == s).map_or(Pick::All, Pick::One))
}

fn methods() -> impl TypedValueParser<Value = Pick<Method>> {
    pick(&Method::ALL, &[], Method::name)
}

fn heads() -> impl TypedValueParser<Value = Pick<HeadMethod>> {
    pick(&HeadMethod::ALL, &HeadMethod::EXTRA, HeadMethod::name)
}

fn parse_scene(s: &str) -> Result<SceneKind, String> {
    SceneKind::from_name(s).map_err(|e| e.to_string())
}

/// `mmguard import`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Folder of PNG/JPEG frames: flat (one clock) or one sub-folder per episode (its name's
    /// last number is the episode id).
    #[arg(long)]
    pub images: PathBuf,
    /// CSV of readings with a header row and a time column (seconds).
    #[arg(long)]
    pub csv: PathBuf,
    /// Output dataset (.npz); the import report goes next to it (<name>.import.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Name of the time column.
    #[arg(long, default_value = "time")]
    pub time_column: String,
    /// Name of the episode column (used when present).
    #[arg(long, default_value = "episode")]
    pub episode_column: String,
    /// CSV columns that are per-sample labels (e.g. phase), not sensors; comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Frame time stamps from the last number of the file name, times this many seconds
    /// (0.001 for names in milliseconds).
    #[arg(long, default_value_t = 1.0, conflicts_with = "fps")]
    pub time_scale: f64,
    /// Take frame times from their name order at this frame rate instead of the file names.
    #[arg(long)]
    pub fps: Option<f64>,
    /// Largest time gap between a frame and its reading, seconds (default: half the median
    /// interval between readings).
    #[arg(long)]
    pub tolerance: Option<f64>,
}

/// `mmguard export`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Dataset file (.npz).
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder: frames/episode_NNNN/<time>.png, sensors.csv, export.json.
    #[arg(long)]
    pub out: PathBuf,
}

/// `mmguard inspect`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Dataset file (.npz).
    pub data: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Training options shared by `train` and `demo`.
#[derive(Debug, Args, Clone)]
pub struct TrainOptions {
    /// Training configuration as JSON (all fields optional); the flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Seed of weights, batch order and fault injection.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Maximum stage-1 epochs.
    #[arg(long)]
    pub stage1_epochs: Option<usize>,
    /// Maximum stage-2 epochs.
    #[arg(long)]
    pub stage2_epochs: Option<usize>,
    /// Samples per batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Sensor window length T (multiple of 4).
    #[arg(long)]
    pub window: Option<usize>,
    /// Amplification γ of the detection path (1 = off).
    #[arg(long)]
    pub gamma: Option<f64>,
    /// Gradient-norm clip c of the corrector (0 = off).
    #[arg(long)]
    pub clip: Option<f64>,
    /// Do not renormalise the modulated gradients to the unmodulated norm.
    #[arg(long)]
    pub no_renormalize: bool,
    /// Target false-alarm rate of the gate on clean validation data.
    #[arg(long)]
    pub false_alarm_rate: Option<f64>,
    /// Take stage 1 from this earlier run (same data, split and architecture) and train only
    /// stage 2.
    #[arg(long)]
    pub reuse_stage1: Option<PathBuf>,
    /// Fault kinds to leave out of stage 2's training mix, comma-separated
    /// (`camera/dust,sensor/drift`), to measure detection on kinds never seen: `eval --faults`
    /// marks each row as trained on or held out.
    #[arg(long, value_delimiter = ',')]
    pub hold_out: Vec<String>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// `mmguard train`
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Dataset file (.npz).
    #[arg(long)]
    pub data: PathBuf,
    /// Run directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Training options.
    #[command(flatten)]
    pub options: TrainOptions,
}

/// `mmguard eval`: the test-fault protocol, or a mode as a subcommand.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct EvalArgs {
    /// A mode other than the test-fault protocol.
    #[command(subcommand)]
    pub mode: Option<EvalMode>,
    /// What to evaluate (absent only with a subcommand, which has its own).
    #[command(flatten)]
    pub target: Option<EvalTarget>,
    /// Old spellings of the modes, kept for one release.
    #[command(flatten)]
    pub old: OldEvalFlags,
}

/// What `mmguard eval` runs.
#[derive(Debug)]
pub enum EvalJob {
    /// The test-fault protocol.
    Protocol(EvalTarget),
    /// A mode of its own.
    Mode(EvalMode),
}

/// `mmguard eval sweep|stream`
#[derive(Debug, Subcommand)]
pub enum EvalMode {
    /// Severity sweep instead of the test-fault protocol: per fault, modality and severity, the
    /// faulty input's, the autoencoder's and the gated output's error, detection AUROC and the
    /// share flagged.
    Sweep(SweepArgs),
    /// Detection on a stream made by `mmguard faults inject` (--data): flags against the file's
    /// fault levels, false alarms before the onset, delay to detection.
    Stream(StreamArgs),
}

/// The run and data every evaluation mode reads.
#[derive(Debug, Args)]
pub struct EvalTarget {
    /// Run directory.
    #[arg(long)]
    pub run: PathBuf,
    /// Dataset file; the run's training file gives its test episodes, any other file is
    /// evaluated whole. Default: the run's training file.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Score threshold of both modalities instead of the run's calibrated ones (the channel and
    /// novelty thresholds stay the run's).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Seed of the fault injection.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `mmguard eval sweep`
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// What to evaluate.
    #[command(flatten)]
    pub target: EvalTarget,
    /// A comma list of `all` (every fault alone), `compound` (common-cause combinations), fault
    /// names such as `camera/blur`, and compounds such as `camera/glare+sensor/noise` (`mmguard
    /// faults list` names them).
    #[arg(long, default_value = "all,compound")]
    pub faults: String,
    /// Severities of the sweep.
    #[arg(long, value_delimiter = ',', default_value = SEVERITIES)]
    pub severities: Vec<f32>,
    /// Folder for the sweep's files: sweep.csv, sweep.json, and the robustness curves
    /// robustness_error.png and robustness_detection.png.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A faulty copy counts as changed where some element of its modality moved by more than
    /// this (a share of the element's range); a second AUROC is taken over the changed copies.
    #[arg(long, default_value_t = SWEEP_MIN_LEVEL)]
    pub min_level: f32,
}

/// The sweep's default severities.
const SEVERITIES: &str = "0,0.25,0.5,0.75,1";

/// The sweep's default `--min-level`: 2 % of the range, the level `eval stream --min-level`
/// is used with on the outside streams in the README.
const SWEEP_MIN_LEVEL: f32 = 0.02;

/// `mmguard eval stream`
#[derive(Debug, Args)]
pub struct StreamArgs {
    /// What to evaluate (`--data`: the stream).
    #[command(flatten)]
    pub target: EvalTarget,
    /// A window is faulty where a reading's fault level exceeds this; windows with levels above
    /// 0 but none above it are left out (where the stream's levels measure the change, as in
    /// `tools/outside_data.py`'s, a change too small to be seen).
    #[arg(long, default_value_t = 0.0)]
    pub min_level: f32,
}

/// `eval --faults …` and `eval --stream`, the spellings before the subcommands; hidden from the
/// help, to be removed in the release after 0.1.
#[derive(Debug, Args)]
pub struct OldEvalFlags {
    /// `eval sweep --faults`.
    #[arg(long, hide = true)]
    pub faults: Option<String>,
    /// `eval sweep --severities`.
    #[arg(long, hide = true, value_delimiter = ',', default_value = SEVERITIES)]
    pub severities: Vec<f32>,
    /// `eval sweep --out`.
    #[arg(long, hide = true)]
    pub out: Option<PathBuf>,
    /// `eval stream`.
    #[arg(long, hide = true, conflicts_with = "faults")]
    pub stream: bool,
}

impl EvalArgs {
    /// The evaluation asked for, with an old spelling read as its subcommand.
    pub fn into_job(self) -> EvalJob {
        let EvalArgs { mode, target, old } = self;
        let Some(target) = target else {
            // clap requires `--run` unless a subcommand is given
            return EvalJob::Mode(mode.expect("a subcommand when there is no --run"));
        };
        match (old.faults, old.stream) {
            (Some(faults), _) => {
                tracing::warn!(
                    "`eval --faults` is now `eval sweep --faults`; the old spelling goes in the next release"
                );
                EvalJob::Mode(EvalMode::Sweep(SweepArgs {
                    target,
                    faults,
                    severities: old.severities,
                    out: old.out,
                    min_level: SWEEP_MIN_LEVEL,
                }))
            }
            (None, true) => {
                tracing::warn!("`eval --stream` is now `eval stream`; the old spelling goes in the next release");
                EvalJob::Mode(EvalMode::Stream(StreamArgs { target, min_level: 0.0 }))
            }
            (None, false) => EvalJob::Protocol(target),
        }
    }
}

/// `mmguard faults …`
#[derive(Debug, Subcommand)]
pub enum FaultsCommand {
    /// List every fault with its name.
    List,
    /// Pictures of the catalogue: a PNG grid of every camera fault at severities 0, 0.25, 0.5,
    /// 0.75, 1 on a real frame, and a plot of every sensor fault on a real channel over an
    /// episode.
    Preview(PreviewArgs),
    /// Write a faulty copy of a dataset: a fault (or `a+b`) that starts during every episode,
    /// with the per-sample fault level as ground truth (keys fault_camera, fault_sensor).
    Inject(InjectArgs),
}

/// `mmguard faults inject`
#[derive(Debug, Args)]
pub struct InjectArgs {
    /// Dataset to copy.
    #[arg(long)]
    pub data: PathBuf,
    /// Output dataset (.npz).
    #[arg(long)]
    pub out: PathBuf,
    /// Fault name, or several joined by `+` (`camera/glare+sensor/noise`).
    #[arg(long)]
    pub fault: String,
    /// Full severity in [0, 1].
    #[arg(long, default_value_t = 1.0)]
    pub severity: f32,
    /// Onset as a share of each episode, in [0, 1).
    #[arg(long, default_value_t = 0.5)]
    pub onset: f32,
    /// Duration as a share of each episode (default: to the end).
    #[arg(long)]
    pub duration: Option<f32>,
    /// How the fault runs over its active stretch.
    #[arg(long, value_enum, default_value_t = Pattern::Permanent)]
    pub pattern: Pattern,
    /// Intermittent: cycle length in readings.
    #[arg(long, default_value_t = 8)]
    pub period: usize,
    /// Intermittent: share of each cycle the fault is on.
    #[arg(long, default_value_t = 0.5)]
    pub duty: f32,
    /// Seed of the faults' randomness.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `mmguard faults preview`
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// Dataset file to take the frame from.
    #[arg(long)]
    pub data: PathBuf,
    /// Sample index of the frame (an earlier one feeds the frozen-frame fault); its episode is
    /// the one plotted.
    #[arg(long, default_value_t = 50)]
    pub sample: usize,
    /// Output PNG of the camera faults.
    #[arg(long, default_value = "faults.png")]
    pub out: PathBuf,
    /// Output PNG of the sensor faults.
    #[arg(long, default_value = "sensor-faults.png")]
    pub sensor_out: PathBuf,
    /// Sensor column to plot (name); default: the column that varies most over the episode.
    #[arg(long)]
    pub column: Option<String>,
    /// Seed of the faults' randomness.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `mmguard calibrate`
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Run directory; its `config.json` gets the new threshold.
    #[arg(long)]
    pub run: PathBuf,
    /// The run's training file, if it has moved since training.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Target false-alarm rate on clean data; default: the run's.
    #[arg(long)]
    pub false_alarm_rate: Option<f64>,
    /// `predictive` (a model of how episodes differ, never below `episodes`), `episodes`
    /// (leave-one-episode-out quantile) or `quantile` (empirical, validation only); default:
    /// the run's own.
    #[arg(long, value_parser = one_of(&Calibration::ALL, Calibration::name))]
    pub method: Option<Calibration>,
    /// The distance under the clean prior that the novelty threshold reads: `window` or
    /// `columns` (each column given the others, and the whole window); default: the run's own.
    #[arg(long, value_parser = one_of(&Novelty::ALL, Novelty::name))]
    pub novelty: Option<Novelty>,
}

/// `mmguard demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the data, the run and the report.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// The twin cell: `arm` or `dual-weld`.
    #[arg(long, default_value = "arm", value_parser = parse_scene)]
    pub scene: SceneKind,
    /// Episodes of twin data.
    #[arg(long, default_value_t = 40)]
    pub episodes: usize,
    /// Training options.
    #[command(flatten)]
    pub options: TrainOptions,
}

/// `mmguard bench`: the method comparison, or `bench speed`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BenchArgs {
    /// A measurement other than the method comparison.
    #[command(subcommand)]
    pub mode: Option<BenchMode>,
    /// Dataset to compare the methods on (train on its training episodes, score on its test
    /// episodes).
    #[arg(long, required_unless_present = "speed")]
    pub data: Option<PathBuf>,
    /// Methods: `all` or a comma list.
    #[arg(long, value_delimiter = ',', default_value = "all", value_parser = methods())]
    pub methods: Vec<Pick<Method>>,
    /// Seeds per method (0, 1, …).
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// A first look in a few minutes: one seed, 1 + 1 epochs (MMSSL stages; the baselines get
    /// their sum), severity curves at severity 1.
    #[arg(long)]
    pub quick: bool,
    /// Report folder; finished method × seed runs in it are reused.
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
    /// Downstream heads on each seed's MMSSL encoders, scored with a modality missing, under
    /// faults and behind MMSSL's gate (as `mmguard robust`): `all` or a comma list; the task is
    /// the `phase` key and the next reading of the first column. Report in `heads/`.
    #[arg(long, value_delimiter = ',', value_parser = heads())]
    pub heads: Vec<Pick<HeadMethod>>,
    /// Training configuration JSON shared by all methods (as `train --config`); without it, the
    /// benchmark budget (5 + 5 epochs, stage-1 learning rate 3·10⁻³).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Hide progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// `bench speed`, the spelling before the subcommand: hidden from the help, to be removed
    /// in the release after 0.1 (with it, `--sensor-dim`, `--reps` and `--json` below).
    #[arg(long, hide = true, conflicts_with = "data")]
    pub speed: bool,
    /// The old `--speed`'s options.
    #[command(flatten, next_help_heading = "Options of the old `--speed` (now `bench speed`)")]
    pub old_speed: SpeedArgs,
}

/// `mmguard bench speed`
#[derive(Debug, Subcommand)]
pub enum BenchMode {
    /// Training and inference throughput of the reference model on synthetic batches, on the
    /// kernels and on burn-flex in one sitting, with the CPU and its vector flags.
    Speed(SpeedArgs),
}

/// `mmguard bench speed`
#[derive(Debug, Args)]
pub struct SpeedArgs {
    /// Sensor columns D of the benchmark model.
    #[arg(long, default_value_t = 18)]
    pub sensor_dim: usize,
    /// Timed repetitions per measurement (after one warm-up).
    #[arg(long, default_value_t = 10)]
    pub reps: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
