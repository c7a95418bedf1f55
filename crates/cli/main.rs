//! `mmguard`: detect and correct faulty camera and sensor modalities in robot cells.
//!
//! The binary only parses flags, sets up logging and dispatches; the work is in the library
//! crates (data → faults → twin → model → train → eval).

mod args;
mod commands;

use clap::Parser;

fn main() -> std::process::ExitCode {
    tune_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "mmguard=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let cli = args::Cli::parse();
    match commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            std::process::ExitCode::from(2)
        }
    }
}

/// The error and each of its causes once: the libraries' errors already end with their source
/// (`file: what the system said`), which anyhow's `{:#}` would print a second time.
fn report(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1).map(|c| c.to_string()) {
        if !out.contains(&cause) {
            out = format!("{out}: {cause}");
        }
    }
    out
}

/// Every tensor above glibc's mmap threshold would otherwise be a fresh mmap: page faults and
/// zeroing on each training step (measured: 20–30 % of a stage-1 step, 40–75 % of batch-64
/// inference). Raising the thresholds keeps those buffers in the heap for reuse.
#[allow(unsafe_code)]
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning parameters; it is called before any thread
    // is started, and both parameters are documented for glibc.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
