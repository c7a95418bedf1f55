//! The methods a benchmark can run.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A method of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// MMSSL: two stages, gated correction (the foundation's model and defaults).
    Mmssl,
    /// MMAE: multimodal denoising autoencoder, one stage, no detector.
    Mmae,
}

impl Method {
    /// Every method, MMSSL first.
    pub const ALL: [Method; 2] = [Method::Mmssl, Method::Mmae];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mmssl => "mmssl",
            Self::Mmae => "mmae",
        }
    }

    /// The label in tables (the paper's spelling).
    pub fn label(self) -> &'static str {
        match self {
            Self::Mmssl => "MMSSL",
            Self::Mmae => "MMAE",
        }
    }

    /// Whether the method has a detector (a gate); the others correct every sample.
    pub fn detects(self) -> bool {
        self == Self::Mmssl
    }

    /// Parses `all` or a comma list of names.
    pub fn parse_list(list: &str) -> Result<Vec<Method>> {
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if name == "all" {
                out.extend(Self::ALL);
                continue;
            }
            let m = Self::ALL.into_iter().find(|m| m.name() == name).ok_or_else(|| {
                Error::Config(format!("unknown method '{name}'; known: all, {}", Self::ALL.map(Self::name).join(", ")))
            })?;
            out.push(m);
        }
        out.dedup();
        if out.is_empty() {
            return Err(Error::Config(format!("--methods '{list}' names no method")));
        }
        Ok(out)
    }
}
