//! The methods a benchmark can run.

use serde::{Deserialize, Serialize};

/// A method of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// MMSSL: two stages, gated correction (the foundation's model and defaults).
    Mmssl,
    /// Ablation: the MMSSL model of the same seed with no gate, every modality of every sample
    /// replaced by its correction (no retraining).
    MmsslNoGate,
    /// Ablation: MMSSL's stage 2 retrained without Lipschitz modulation (γ = 1, no clipping,
    /// no renormalisation) on the stage 1 of the same seed.
    MmsslNoModulation,
    /// Ablation: autoencoder and compute block trained together from the start on faulty data
    /// (the epochs of both stages), no frozen clean stage 1.
    MmsslSingleStage,
    /// Ablation: dense instead of convolutional stage-1 encoders (both stages retrained).
    MmsslDenseEncoders,
    /// Ablation: stage 2 retrained with the paper's detector on E's code alone, no evidence and
    /// no per-channel scores, on the stage 1 of the same seed.
    MmsslNoEvidence,
    /// Ablation: stage 2 retrained on the earlier fault mix (test faults first, nine catalogue
    /// faults, one modality at a time, severity from 0.3), on the stage 1 of the same seed.
    MmsslTestFaults,
    /// Ablation: the MMSSL model of the same seed behind one threshold on max(camera, sensor)
    /// for the whole false-alarm budget instead of one per modality (no retraining).
    MmsslOneThreshold,
    /// Ablation: the MMSSL model of the same seed substituting a flagged modality whole instead
    /// of only its suspect channels (no retraining).
    MmsslWholeModality,
    /// Ablation: stage 2 retrained on the raw latent instead of the standardised, bounded one,
    /// and stopped early on the total loss instead of the output error, on the stage 1 of the
    /// same seed (the earlier stage 2).
    MmsslRawLatent,
    /// Ablation: the MMSSL model of the same seed handing on the decoded correction as it is,
    /// without keeping what of the input agrees with it (no retraining).
    MmsslDecodedOutput,
    /// Ablation: the MMSSL model of the same seed repairing the sensor input by the rule alone,
    /// without the learned choice between the correction and maps of the faulty column (no
    /// retraining).
    MmsslRuleRepair,
    /// Ablation: stage 2 and the learned repair retrained without the clean-window prior, on the
    /// stage 1 of the same seed: the repair's maps fitted column by column, the sensor gated by
    /// its score alone.
    MmsslColumnMaps,
    /// Ablation: stage 2 retrained with the highway decoder on the whole latent (the earlier
    /// default) instead of the split one (direct on the sensor part), on the stage 1 of the
    /// same seed.
    MmsslHighway,
    /// MMAE: multimodal denoising autoencoder, one stage, no detector.
    Mmae,
    /// MMFR: the MMAE with the authors' fuzzy regularisation of its bottleneck.
    Mmfr,
    /// MMCF: concept fusion of the two modalities' codes (the authors' adaptive fusion).
    Mmcf,
    /// MMGAN: the MMAE as generator against conditional discriminators.
    Mmgan,
    /// MMUGAN: MMGAN with a U-Net generator (skip connections per modality).
    Mmugan,
}

impl Method {
    /// Every method, MMSSL first.
    pub const ALL: [Method; 19] = [
        Method::Mmssl,
        Method::MmsslNoGate,
        Method::MmsslNoModulation,
        Method::MmsslSingleStage,
        Method::MmsslDenseEncoders,
        Method::MmsslNoEvidence,
        Method::MmsslTestFaults,
        Method::MmsslOneThreshold,
        Method::MmsslWholeModality,
        Method::MmsslRawLatent,
        Method::MmsslDecodedOutput,
        Method::MmsslRuleRepair,
        Method::MmsslColumnMaps,
        Method::MmsslHighway,
        Method::Mmae,
        Method::Mmfr,
        Method::Mmcf,
        Method::Mmgan,
        Method::Mmugan,
    ];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mmssl => "mmssl",
            Self::MmsslNoGate => "mmssl-no-gate",
            Self::MmsslNoModulation => "mmssl-no-modulation",
            Self::MmsslSingleStage => "mmssl-single-stage",
            Self::MmsslDenseEncoders => "mmssl-dense-encoders",
            Self::MmsslNoEvidence => "mmssl-no-evidence",
            Self::MmsslTestFaults => "mmssl-test-faults",
            Self::MmsslOneThreshold => "mmssl-one-threshold",
            Self::MmsslWholeModality => "mmssl-whole-modality",
            Self::MmsslRawLatent => "mmssl-raw-latent",
            Self::MmsslDecodedOutput => "mmssl-decoded-output",
            Self::MmsslRuleRepair => "mmssl-rule-repair",
            Self::MmsslColumnMaps => "mmssl-column-maps",
            Self::MmsslHighway => "mmssl-highway",
            Self::Mmae => "mmae",
            Self::Mmfr => "mmfr",
            Self::Mmcf => "mmcf",
            Self::Mmgan => "mmgan",
            Self::Mmugan => "mmugan",
        }
    }

    /// The label in tables (the paper's spelling).
    pub fn label(self) -> &'static str {
        match self {
            Self::Mmssl => "MMSSL",
            Self::MmsslNoGate => "MMSSL, no gate",
            Self::MmsslNoModulation => "MMSSL, no modulation",
            Self::MmsslSingleStage => "MMSSL, single stage",
            Self::MmsslDenseEncoders => "MMSSL, dense encoders",
            Self::MmsslNoEvidence => "MMSSL, no evidence",
            Self::MmsslTestFaults => "MMSSL, test-fault mix",
            Self::MmsslOneThreshold => "MMSSL, one threshold",
            Self::MmsslWholeModality => "MMSSL, whole-modality substitution",
            Self::MmsslRawLatent => "MMSSL, raw latent",
            Self::MmsslDecodedOutput => "MMSSL, decoded output (no input repair)",
            Self::MmsslRuleRepair => "MMSSL, rule repair (no learned mix)",
            Self::MmsslColumnMaps => "MMSSL, column-wise maps (no clean prior)",
            Self::MmsslHighway => "MMSSL, highway decoder",
            Self::Mmae => "MMAE",
            Self::Mmfr => "MMFR",
            Self::Mmcf => "MMCF",
            Self::Mmgan => "MMGAN",
            Self::Mmugan => "MMUGAN",
        }
    }

    /// A label short enough to stand under a bar.
    pub fn short_label(self) -> &'static str {
        match self {
            Self::MmsslNoGate => "no gate",
            Self::MmsslNoModulation => "no modul.",
            Self::MmsslSingleStage => "1 stage",
            Self::MmsslDenseEncoders => "dense enc.",
            Self::MmsslNoEvidence => "no evid.",
            Self::MmsslTestFaults => "test faults",
            Self::MmsslOneThreshold => "1 thresh.",
            Self::MmsslWholeModality => "whole mod.",
            Self::MmsslRawLatent => "raw latent",
            Self::MmsslDecodedOutput => "decoded",
            Self::MmsslRuleRepair => "rule rep.",
            Self::MmsslColumnMaps => "col. maps",
            Self::MmsslHighway => "highway",
            other => other.label(),
        }
    }

    /// Whether the method has a detector (a gate): MMSSL and its ablations but the one that
    /// ignores it; the others correct every sample.
    pub fn detects(self) -> bool {
        self == Self::Mmssl || (self.is_ablation() && self != Self::MmsslNoGate)
    }

    /// Whether the method is an ablation of MMSSL (compared with MMSSL, not counted as a
    /// baseline).
    pub fn is_ablation(self) -> bool {
        matches!(
            self,
            Self::MmsslNoGate
                | Self::MmsslNoModulation
                | Self::MmsslSingleStage
                | Self::MmsslDenseEncoders
                | Self::MmsslNoEvidence
                | Self::MmsslTestFaults
                | Self::MmsslOneThreshold
                | Self::MmsslWholeModality
                | Self::MmsslRawLatent
                | Self::MmsslDecodedOutput
                | Self::MmsslRuleRepair
                | Self::MmsslColumnMaps
                | Self::MmsslHighway
        )
    }
}
