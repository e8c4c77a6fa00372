//! Errors: [`LoadError`] ends a run before or instead of measuring; [`ErrorKind`] classifies
//! one failed request during a run (counted, never fatal).

use std::io;
use std::net::SocketAddr;

/// Why a load run could not be set up or carried out. Each message is one line that names
/// what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The target URL could not be parsed.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The URL uses a scheme other than `http` or `https`.
    #[error("unsupported URL scheme in {url:?}: expected http:// or https://")]
    UnsupportedScheme {
        /// The URL as given.
        url: String,
    },
    /// The host name did not resolve.
    #[error("cannot resolve host {host:?}: {source}")]
    Resolve {
        /// `host:port` that was looked up.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// A connection could not be established before the run started.
    #[error("cannot connect to {addr}: {reason} — is the server running?")]
    Connect {
        /// The address that was dialled.
        addr: SocketAddr,
        /// Why, in words (e.g. "connection refused").
        reason: String,
    },
    /// The load specification is inconsistent (e.g. zero connections, a negative rate).
    #[error("invalid load spec: {0}")]
    InvalidSpec(String),
    /// The runtime or a worker thread could not be started.
    #[error("cannot start load generator threads: {0}")]
    Runtime(#[source] io::Error),
    /// A worker thread panicked (a bug).
    #[error("a load generator thread panicked: {0}")]
    WorkerPanicked(String),
}

/// Why one request failed. Requests that fail are counted by kind in
/// [`LoadReport::errors`](crate::LoadReport::errors) and the connection is re-established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Reconnecting was refused (nothing listens at the address any more).
    ConnectRefused,
    /// Reconnecting timed out.
    ConnectTimeout,
    /// Reconnecting failed otherwise.
    Connect,
    /// The server reset the connection (RST).
    Reset,
    /// The server closed the connection before the response was complete (EOF, broken pipe).
    Closed,
    /// No complete response within the request timeout.
    Timeout,
    /// The response was not valid HTTP/1.x (or its head exceeded the read buffer).
    Parse,
    /// Any other I/O error.
    Io,
    /// The TLS handshake or a record failed (a bad certificate, an alert, garbage).
    Tls,
}

impl ErrorKind {
    /// Number of kinds (for per-kind counter arrays).
    pub const COUNT: usize = 9;
    /// All kinds, in index order.
    pub const ALL: [ErrorKind; Self::COUNT] = [
        ErrorKind::ConnectRefused,
        ErrorKind::ConnectTimeout,
        ErrorKind::Connect,
        ErrorKind::Reset,
        ErrorKind::Closed,
        ErrorKind::Timeout,
        ErrorKind::Parse,
        ErrorKind::Io,
        ErrorKind::Tls,
    ];

    /// The stable name used as the key in reports and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Reset => "reset",
            ErrorKind::Closed => "closed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Parse => "parse",
            ErrorKind::Io => "io",
            ErrorKind::Tls => "tls",
        }
    }

    /// Index into a `[_; ErrorKind::COUNT]` array.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Classifies an I/O error seen while writing a request or reading a response.
    pub fn from_io(e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => ErrorKind::Reset,
            io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof => ErrorKind::Closed,
            io::ErrorKind::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Io,
        }
    }

    /// Classifies an error from `connect`.
    pub fn from_connect(e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
            io::ErrorKind::TimedOut => ErrorKind::ConnectTimeout,
            _ => ErrorKind::Connect,
        }
    }
}

/// A connect error in words, lower case, without the OS error number.
pub(crate) fn describe_connect_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::TimedOut => "connection timed out".to_owned(),
        io::ErrorKind::AddrNotAvailable => "address not available".to_owned(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_lowercase(),
                None => s.to_lowercase(),
            }
        }
    }
}
