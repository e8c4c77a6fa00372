//! What can go wrong reading or writing results.

use std::path::PathBuf;

/// Errors of [`crate::load`] and [`crate::write_all`].
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file or directory could not be read or written.
    #[error("could not {action} {path}: {source}")]
    Io {
        /// `read`, `write`, `create directory`.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not JSON, or not the results shape.
    #[error("{path}: not a valid results.json: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The file has no `schema_version`.
    #[error("{path}: no schema_version field: this is not a results.json written by the bench")]
    MissingVersion {
        /// The file.
        path: PathBuf,
    },
    /// The file was written with another version of the results shape.
    #[error(
        "{path}: results schema_version {found}, but this bench reads version {expected}: \
         compare files written by the same bench version, or re-run the bench to regenerate it"
    )]
    SchemaVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u64,
        /// The version this crate reads.
        expected: u32,
    },
    /// The results could not be serialised, or would not read back (a NaN or infinity
    /// becomes `null` in JSON); the files were written anyway.
    #[error("{path}: results do not read back as written ({source}); a NaN or infinite figure is the usual cause")]
    RoundTrip {
        /// The file written.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// Serialisation failed.
    #[error("could not serialise results: {0}")]
    Serialize(#[from] serde_json::Error),
}
