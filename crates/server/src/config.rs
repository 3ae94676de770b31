//! What the server needs to know to listen and answer; filled by the binary from flags,
//! environment and the config file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub enum TlsMode {
    /// Plain HTTP.
    Off,
    /// A certificate chain and private key in PEM files.
    Files { cert: PathBuf, key: PathBuf },
    /// A self-signed certificate for `localhost` and `127.0.0.1`, generated on first start and
    /// kept in the data directory (`tls/cert.pem`) so clients can be told to trust it.
    SelfSigned,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub tls: TlsMode,
    /// Domains under which `<bucket>.<domain>` addresses a bucket (virtual-hosted style).
    pub virtual_host_domains: Vec<String>,
    /// Largest JSON or query-protocol request body accepted.
    pub max_api_body_bytes: usize,
    /// Largest S3 request body (a single PUT may be 5 GiB, plus aws-chunked framing).
    pub max_s3_body_bytes: u64,
    /// Deadline for one JSON or query-protocol request.
    pub api_timeout: Duration,
    /// How long shutdown waits for open connections before closing them.
    pub shutdown_grace: Duration,
    /// Threads that serve connections, each connection on one of them for its whole life.
    pub connection_threads: usize,
}

impl ServerConfig {
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            listen,
            data_dir,
            tls: TlsMode::Off,
            virtual_host_domains: vec!["localhost".into()],
            max_api_body_bytes: 1024 * 1024,
            max_s3_body_bytes: 5 * 1024 * 1024 * 1024 + 16 * 1024 * 1024,
            api_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            connection_threads: default_connection_threads(),
        }
    }
}

/// One connection thread per core.
pub fn default_connection_threads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}
