//! Why the service refuses a request, in its own terms: every transport (HTTP now, MQTT next)
//! maps a [`Refusal`] to what it can say — an HTTP status ([`crate::http`]), a dead-letter
//! reason — and the metrics count refusals by [`Kind`], not by a transport's codes.

use serde::Serialize;

/// What kind of refusal it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The request is malformed: a field is missing, of the wrong type, shape or value.
    Invalid,
    /// The request is well formed but cannot be served as it is (e.g. a run that does not fit).
    Unprocessable,
    /// The request is bigger than the limits allow (body bytes, samples).
    TooLarge,
    /// The body is not in an encoding the service reads.
    UnsupportedEncoding,
    /// The body did not arrive in time.
    TimedOut,
    /// No credentials, or wrong ones, for an admin action.
    Unauthorized,
    /// An admin action that is closed on this server.
    Forbidden,
    /// The service cannot take it now (queue full, draining, not ready): try again later.
    Unavailable,
    /// The service failed: a bug or a broken run.
    Internal,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 9] = [
        Kind::Invalid,
        Kind::Unprocessable,
        Kind::TooLarge,
        Kind::UnsupportedEncoding,
        Kind::TimedOut,
        Kind::Unauthorized,
        Kind::Forbidden,
        Kind::Unavailable,
        Kind::Internal,
    ];

    /// Whether the client can fix it by sending something else (as against the service's state).
    pub fn is_client_error(self) -> bool {
        !matches!(self, Kind::Unavailable | Kind::Internal)
    }

    /// The name the metrics use.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Invalid => "invalid",
            Kind::Unprocessable => "unprocessable",
            Kind::TooLarge => "too_large",
            Kind::UnsupportedEncoding => "unsupported_encoding",
            Kind::TimedOut => "timed_out",
            Kind::Unauthorized => "unauthorized",
            Kind::Forbidden => "forbidden",
            Kind::Unavailable => "unavailable",
            Kind::Internal => "internal",
        }
    }
}

/// A request the service refuses, with what was wrong.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refusal {
    /// What kind of refusal (not serialised: each transport says it its own way).
    #[serde(skip)]
    pub kind: Kind,
    /// The offending field, as a path (`samples[3].sensor[2]`), or `body`.
    pub field: String,
    /// What was expected there.
    pub expected: String,
    /// What was found.
    pub found: String,
}

impl Refusal {
    /// A malformed request ([`Kind::Invalid`]).
    pub fn bad(field: impl Into<String>, expected: impl Into<String>, found: impl Into<String>) -> Self {
        Self::with(Kind::Invalid, field, expected, found)
    }

    /// Any kind.
    pub fn with(kind: Kind, field: impl Into<String>, expected: impl Into<String>, found: impl Into<String>) -> Self {
        Self { kind, field: field.into(), expected: expected.into(), found: found.into() }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: expected {}, found {}", self.field, self.expected, self.found)
    }
}

impl std::error::Error for Refusal {}
