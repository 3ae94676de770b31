//! Configuration: command-line flags, `KEYTRAIL_*` environment variables and a TOML file.
//! A flag wins over its environment variable (clap), both win over the file, the file wins over
//! the built-in default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use keytrail_iam::DeclaredCredential;
use keytrail_server::{ServerConfig, TlsMode};
use serde::Deserialize;
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    /// Account of the root key created on first start when no credentials are declared.
    pub account_id: Option<String>,
    pub virtual_host_domains: Option<Vec<String>>,
    pub max_api_body_bytes: Option<usize>,
    /// The root key file; default `<data_dir>/root.key`.
    pub root_key_file: Option<PathBuf>,
    pub max_s3_body_bytes: Option<u64>,
    pub api_timeout_seconds: Option<u64>,
    pub shutdown_grace_seconds: Option<u64>,
    /// Threads serving connections [default: one per core].
    pub connection_threads: Option<usize>,
    #[serde(default)]
    pub tls: FileTls,
    #[serde(default)]
    pub credentials: Vec<FileCredential>,
    #[serde(default)]
    pub cloudtrail: FileCloudTrail,
    #[serde(default)]
    pub kms: FileKms,
    /// KMS list prices for `keytrail usage` (defaults: AWS's public prices).
    #[serde(default)]
    pub pricing: crate::usage::Pricing,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCloudTrail {
    /// Seconds between log-file deliveries [default: 300, as AWS].
    pub delivery_interval_seconds: Option<u64>,
    /// Days Event history keeps management events [default: 90].
    pub event_history_days: Option<u64>,
    /// Records per log file before a delivery is split [default: 10000].
    pub max_records_per_file: Option<usize>,
    /// Seconds a digest file covers [default: 3600, as AWS].
    pub digest_interval_seconds: Option<u64>,
    /// Days a region's digest-signing key signs before it is replaced [default: 30].
    pub signing_key_rotation_days: Option<u64>,
}

/// How KMS reaches the XKS proxies of external key stores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileKms {
    /// PEM file of CA certificates trusted for XKS proxies' TLS, besides the system's.
    pub xks_trusted_ca_file: Option<PathBuf>,
    /// Proxy host name → `ip:port` to connect to (an endpoint URI cannot carry a port).
    #[serde(default)]
    pub xks_proxy_addresses: std::collections::HashMap<String, SocketAddr>,
    /// How long to wait for a proxy [default: 250, as AWS KMS].
    pub xks_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    #[serde(default)]
    pub self_signed: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCredential {
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(default = "default_account")]
    pub account_id: String,
    pub user_name: Option<String>,
}

impl std::fmt::Debug for FileCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCredential")
            .field("access_key_id", &self.access_key_id)
            .field("account_id", &self.account_id)
            .field("user_name", &self.user_name)
            .finish_non_exhaustive()
    }
}

fn default_account() -> String {
    "000000000000".into()
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:4566].
    #[arg(long, env = "KEYTRAIL_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, env = "KEYTRAIL_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "KEYTRAIL_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate kept in <data-dir>/tls/cert.pem.
    #[arg(long, env = "KEYTRAIL_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
    /// Account of the root key created on first start [default: 000000000000].
    #[arg(long, env = "KEYTRAIL_ACCOUNT_ID")]
    pub account_id: Option<String>,
    /// Domain under which <bucket>.<domain> addresses a bucket; repeatable [default: localhost].
    #[arg(
        long = "virtual-host-domain",
        env = "KEYTRAIL_VIRTUAL_HOST_DOMAINS",
        value_delimiter = ','
    )]
    pub virtual_host_domains: Vec<String>,
    /// Seconds between CloudTrail log-file deliveries [default: 300].
    #[arg(long, env = "KEYTRAIL_CLOUDTRAIL_DELIVERY_SECONDS")]
    pub cloudtrail_delivery_seconds: Option<u64>,
    /// Seconds a CloudTrail digest file covers [default: 3600].
    #[arg(long, env = "KEYTRAIL_CLOUDTRAIL_DIGEST_SECONDS")]
    pub cloudtrail_digest_seconds: Option<u64>,
    /// Run the service clock this many times faster than the wall clock (for tests and
    /// simulations: 288 makes a day pass in five minutes). Signatures still use the wall clock.
    #[arg(long, env = "KEYTRAIL_CLOCK_RATE")]
    pub clock_rate: Option<f64>,
    /// Where the service clock starts (RFC 3339, e.g. 2026-11-01T00:00:00Z) [default: now].
    #[arg(long, env = "KEYTRAIL_CLOCK_START", requires = "clock_rate")]
    pub clock_start: Option<String>,
}

/// Everything `serve` needs, resolved.
pub struct Settings {
    pub server: ServerConfig,
    pub credentials: Vec<DeclaredCredential>,
    pub default_account: String,
    pub cloudtrail: keytrail_cloudtrail::CloudTrailConfig,
    pub xks: keytrail_kms::xks::XksSettings,
    /// An accelerated service clock: where it starts and how fast it runs.
    pub clock: Option<(Option<time::OffsetDateTime>, f64)>,
}

impl Settings {
    pub fn resolve(args: ServeArgs, file: &FileConfig, data_dir: PathBuf) -> Result<Self> {
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 4566)));
        let mut server = ServerConfig::new(listen, data_dir);
        server.tls = match (args.tls_cert, args.tls_key, args.tls_self_signed) {
            (Some(cert), Some(key), _) => TlsMode::Files { cert, key },
            (_, _, true) => TlsMode::SelfSigned,
            _ => match (&file.tls.cert, &file.tls.key, file.tls.self_signed) {
                (Some(cert), Some(key), _) => TlsMode::Files {
                    cert: cert.clone(),
                    key: key.clone(),
                },
                (Some(_), None, _) | (None, Some(_), _) => {
                    bail!("the config file's [tls] needs both cert and key")
                }
                (None, None, true) => TlsMode::SelfSigned,
                (None, None, false) => TlsMode::Off,
            },
        };
        if !args.virtual_host_domains.is_empty() {
            server.virtual_host_domains = args.virtual_host_domains;
        } else if let Some(domains) = &file.virtual_host_domains {
            server.virtual_host_domains = domains.clone();
        }
        if let Some(n) = file.max_api_body_bytes {
            server.max_api_body_bytes = n;
        }
        if let Some(n) = file.max_s3_body_bytes {
            server.max_s3_body_bytes = n;
        }
        if let Some(s) = file.api_timeout_seconds {
            server.api_timeout = std::time::Duration::from_secs(s);
        }
        if let Some(s) = file.shutdown_grace_seconds {
            server.shutdown_grace = std::time::Duration::from_secs(s);
        }
        if let Some(n) = file.connection_threads {
            if n == 0 {
                bail!("connection_threads must be at least 1");
            }
            server.connection_threads = n;
        }
        let default_account = args
            .account_id
            .or_else(|| file.account_id.clone())
            .unwrap_or_else(default_account);
        keytrail_iam::validate_account_id(&default_account)?;
        let credentials = file
            .credentials
            .iter()
            .map(|c| DeclaredCredential {
                access_key_id: c.access_key_id.clone(),
                secret_access_key: Zeroizing::new(c.secret_access_key.clone()),
                account_id: c.account_id.clone(),
                user_name: c.user_name.clone(),
            })
            .collect();
        let cloudtrail = cloudtrail_config(
            args.cloudtrail_delivery_seconds,
            args.cloudtrail_digest_seconds,
            file,
        )?;
        let clock_start = args
            .clock_start
            .as_deref()
            .map(|text| {
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .with_context(|| format!("--clock-start {text:?} is not an RFC 3339 time"))
            })
            .transpose()?;
        let xks = xks_settings(&file.kms)?;
        Ok(Self {
            server,
            credentials,
            default_account,
            cloudtrail,
            xks,
            clock: args.clock_rate.map(|rate| (clock_start, rate)),
        })
    }
}

fn xks_settings(file: &FileKms) -> Result<keytrail_kms::xks::XksSettings> {
    let trusted_ca_pem = match &file.xks_trusted_ca_file {
        Some(path) => std::fs::read(path)
            .with_context(|| format!("reading kms.xks_trusted_ca_file {}", path.display()))?,
        None => Vec::new(),
    };
    Ok(keytrail_kms::xks::XksSettings {
        trusted_ca_pem,
        addresses: file.xks_proxy_addresses.clone(),
        timeout: file.xks_timeout_ms.map(std::time::Duration::from_millis),
    })
}

/// CloudTrail's settings: flags (when given) over the config file over AWS's defaults.
pub fn cloudtrail_config(
    delivery_seconds: Option<u64>,
    digest_seconds: Option<u64>,
    file: &FileConfig,
) -> Result<keytrail_cloudtrail::CloudTrailConfig> {
    let mut cloudtrail = keytrail_cloudtrail::CloudTrailConfig::default();
    if let Some(s) = delivery_seconds.or(file.cloudtrail.delivery_interval_seconds) {
        if s == 0 {
            bail!("the CloudTrail delivery interval must be at least one second");
        }
        cloudtrail.delivery_interval = std::time::Duration::from_secs(s);
    }
    if let Some(s) = digest_seconds.or(file.cloudtrail.digest_interval_seconds) {
        if s == 0 {
            bail!("the CloudTrail digest interval must be at least one second");
        }
        cloudtrail.digest_interval = std::time::Duration::from_secs(s);
    }
    if let Some(days) = file.cloudtrail.event_history_days {
        cloudtrail.retention = std::time::Duration::from_secs(days * 86_400);
    }
    if let Some(days) = file.cloudtrail.signing_key_rotation_days {
        cloudtrail.signing_key_rotation = std::time::Duration::from_secs(days.max(1) * 86_400);
    }
    if let Some(n) = file.cloudtrail.max_records_per_file {
        cloudtrail.max_records_per_file = n.max(1);
    }
    Ok(cloudtrail)
}
