//! The keytrail binary: `serve` runs the server; `credentials` manages access keys offline;
//! `events tail` prints the newest journal records. It only wires the library crates together
//! and reads configuration (flag > environment variable > config file > default).

mod config;
mod usage;
mod validate;

/// glibc's allocator spent a fifth of the request threads' time under load; mimalloc's
/// thread-local free lists do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use keytrail_audit::Journal;
use keytrail_cloudtrail::CloudTrail;
use keytrail_crypto::RootKey;
use keytrail_iam::{Identities, NewAccessKey};
use keytrail_kms::Kms;
use keytrail_s3::S3Engine;
use keytrail_server::Server;
use keytrail_store::Store;
use keytrail_store::sqlite::SqliteStore;

use crate::config::{FileConfig, LogFormat, ServeArgs, Settings};

#[derive(Parser, Debug)]
#[command(
    name = "keytrail",
    version,
    about = "AWS-compatible KMS, S3 and CloudTrail in one binary"
)]
struct Cli {
    /// TOML configuration file (see docs/configuration.md).
    #[arg(long, global = true, env = "KEYTRAIL_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Where keytrail keeps its database, root key and TLS files [default: ./keytrail-data].
    #[arg(long, global = true, env = "KEYTRAIL_DATA_DIR")]
    data_dir: Option<std::path::PathBuf>,
    /// Root key file (created 0600 if missing) [default: <data-dir>/root.key].
    /// KEYTRAIL_ROOT_KEY (64 hex digits or base64 of 32 bytes) takes precedence over any file.
    #[arg(long, global = true, env = "KEYTRAIL_ROOT_KEY_FILE")]
    root_key_file: Option<std::path::PathBuf>,
    /// Log format on stderr [default: text].
    #[arg(long, global = true, env = "KEYTRAIL_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Manage access keys without a running server.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// Read the audit journal.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Check a trail's digest and log files against a running server, as
    /// `aws cloudtrail validate-logs` does (credentials from AWS_ACCESS_KEY_ID/SECRET).
    ValidateLogs(validate::ValidateArgs),
    /// KMS requests per key and source, their cost at AWS's prices, and what the configured
    /// trails will cost (reads the data directory; works beside a running server).
    Usage(usage::UsageArgs),
}

#[derive(Subcommand, Debug)]
enum CredentialsCommand {
    /// Create an access key for an account's root user, or for an IAM user (created if needed).
    Create {
        #[arg(long, default_value = "000000000000")]
        account_id: String,
        #[arg(long)]
        user: Option<String>,
    },
    /// List access keys (never their secrets).
    List,
    /// Delete an access key.
    Delete { access_key_id: String },
}

#[derive(Subcommand, Debug)]
enum EventsCommand {
    /// Print the newest events as JSON lines, oldest first.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Keep printing new events as they are journaled.
        #[arg(short, long)]
        follow: bool,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let file = match &cli.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let log_format = cli
        .log_format
        .or(file.log_format)
        .unwrap_or(LogFormat::Text);
    init_tracing(log_format);
    let data_dir = cli
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| "./keytrail-data".into());
    let root_key_file = cli
        .root_key_file
        .clone()
        .or_else(|| file.root_key_file.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let settings = Settings::resolve(args, &file, data_dir)?;
                serve(settings, root_key_file.as_deref()).await
            }
            Command::Credentials(cmd) => {
                credentials(cmd, &data_dir, root_key_file.as_deref()).await
            }
            Command::Events(EventsCommand::Tail { lines, follow }) => {
                tail(&data_dir, lines, follow).await
            }
            Command::Usage(args) => {
                let cloudtrail = config::cloudtrail_config(None, None, &file)?;
                usage::run(args, &data_dir, &file.pricing, &cloudtrail).await
            }
            Command::ValidateLogs(args) => {
                let status = validate::run(args).await?;
                if status != 0 {
                    std::process::exit(status);
                }
                Ok(())
            }
        }
    })
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

struct Opened {
    store: Arc<dyn Store>,
    identities: Arc<Identities>,
    root_key: Arc<RootKey>,
}

/// The root key: `KEYTRAIL_ROOT_KEY` if set, else the given file, else `<data>/root.key`.
fn root_key(data_dir: &Path, file: Option<&Path>) -> Result<RootKey> {
    if let Ok(text) = std::env::var("KEYTRAIL_ROOT_KEY") {
        return RootKey::from_encoded(&text).context("KEYTRAIL_ROOT_KEY");
    }
    let path = file.map_or_else(|| data_dir.join("root.key"), Path::to_path_buf);
    Ok(RootKey::load_or_create(&path)?)
}

fn open(data_dir: &Path, root_key_file: Option<&Path>) -> Result<Opened> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let root_key = Arc::new(root_key(data_dir, root_key_file)?);
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&data_dir.join("keytrail.db"))
            .with_context(|| format!("opening the store in {}", data_dir.display()))?,
    );
    let identities = Arc::new(Identities::new(Arc::clone(&store), Arc::clone(&root_key)));
    Ok(Opened {
        store,
        identities,
        root_key,
    })
}

fn export_lines(key: &NewAccessKey, endpoint: Option<&str>) -> String {
    let mut out = format!(
        "export AWS_ACCESS_KEY_ID={}\nexport AWS_SECRET_ACCESS_KEY={}\nexport AWS_DEFAULT_REGION=us-east-1\n",
        key.access_key_id,
        key.secret_access_key.as_str()
    );
    if let Some(endpoint) = endpoint {
        out.push_str(&format!("export AWS_ENDPOINT_URL={endpoint}\n"));
    }
    out
}

/// How often keys past their deletion date are deleted and due rotations run.
const KMS_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

async fn serve(settings: Settings, root_key_file: Option<&Path>) -> Result<()> {
    if let Some((start, rate)) = settings.clock {
        keytrail_audit::clock::accelerate(start, rate)?;
        tracing::warn!(
            rate,
            now = %keytrail_audit::clock::now(),
            "the service clock is accelerated: events, deliveries and expiries follow it"
        );
    }
    let opened = open(&settings.server.data_dir, root_key_file)?;
    opened.identities.check_root_key().await.context(
        "the root key does not unwrap the stored secrets: refusing to start with the wrong root key",
    )?;
    let kms = Arc::new(
        Kms::new(
            Arc::clone(&opened.store),
            Arc::clone(&opened.root_key),
            Arc::clone(&opened.identities),
            Journal::new(Arc::clone(&opened.store)),
        )
        .with_xks_settings(settings.xks.clone()),
    );
    kms.check_root_key().await.context(
        "the root key does not unwrap the stored KMS key material: refusing to start with the wrong root key",
    )?;
    let sweeper = {
        let kms = Arc::clone(&kms);
        tokio::spawn(async move {
            // Deletion windows end on the service clock, which may run fast.
            let every = keytrail_audit::clock::real(KMS_SWEEP_INTERVAL)
                .max(std::time::Duration::from_millis(250));
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                if let Err(e) = kms.sweep().await {
                    tracing::error!(error = %e, "KMS sweep failed");
                }
            }
        })
    };
    let created = opened
        .identities
        .bootstrap(&settings.credentials, &settings.default_account)
        .await
        .context("bootstrapping credentials")?;
    let s3 = S3Engine::open(
        Arc::clone(&opened.store),
        Arc::clone(&kms),
        Arc::clone(&opened.root_key),
        Arc::clone(&opened.identities),
        &settings.server.data_dir,
    )
    .context("opening the object store")?;
    let cloudtrail = Arc::new(CloudTrail::new(
        Arc::clone(&opened.store),
        Arc::clone(&kms),
        s3.clone(),
        Arc::clone(&opened.identities),
        Arc::clone(&opened.root_key),
        Journal::new(Arc::clone(&opened.store)),
        settings.cloudtrail.clone(),
    ));
    let (stop_delivery, delivery_stopped) = tokio::sync::oneshot::channel::<()>();
    let deliverer = {
        let cloudtrail = Arc::clone(&cloudtrail);
        tokio::spawn(async move {
            cloudtrail
                .run_delivery(async {
                    let _ = delivery_stopped.await;
                })
                .await;
        })
    };
    let server = Server::bind(
        settings.server.clone(),
        Arc::clone(&opened.store),
        Arc::clone(&opened.identities),
        Arc::clone(&kms),
        s3,
        cloudtrail,
    )
    .await?;
    let url = server.url();
    let mut stdout = std::io::stdout().lock();
    if let Some(key) = created {
        let path = settings.server.data_dir.join("root-credentials");
        let lines = export_lines(&key, Some(&url));
        let _ = std::fs::remove_file(&path);
        keytrail_crypto::write_private_file(&path, lines.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        writeln!(
            stdout,
            "Created root credentials for account {} (also saved in {}, mode 0600):\n{lines}",
            key.account_id,
            path.display()
        )?;
    }
    writeln!(stdout, "keytrail listening on {url}")?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(%url, data_dir = %settings.server.data_dir.display(), "keytrail started");
    server.run(shutdown_signal()).await;
    sweeper.abort();
    // A delivery in progress finishes (or is redone from its plan at the next start).
    let _ = stop_delivery.send(());
    let _ = deliverer.await;
    tracing::info!("flushing the store");
    opened.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
    }
}

async fn credentials(
    cmd: CredentialsCommand,
    data_dir: &Path,
    root_key_file: Option<&Path>,
) -> Result<()> {
    let opened = open(data_dir, root_key_file)?;
    let result = match cmd {
        CredentialsCommand::Create { account_id, user } => {
            let key = opened
                .identities
                .create_access_key(&account_id, user.as_deref())
                .await?;
            let who = match &key.user_name {
                Some(user) => format!("IAM user {user}"),
                None => "the root user".to_string(),
            };
            println!(
                "Created access key {} for {who} of account {}:\n{}",
                key.access_key_id,
                key.account_id,
                export_lines(&key, None)
            );
            Ok(())
        }
        CredentialsCommand::List => {
            println!(
                "{:<24} {:<14} {:<20} {:<8}",
                "ACCESS KEY ID", "ACCOUNT", "USER", "STATUS"
            );
            for key in opened.identities.list_access_keys().await? {
                println!(
                    "{:<24} {:<14} {:<20} {:<8}",
                    key.access_key_id,
                    key.account_id,
                    key.user_name.as_deref().unwrap_or("(root)"),
                    key.status
                );
            }
            Ok(())
        }
        CredentialsCommand::Delete { access_key_id } => {
            if opened.identities.delete_access_key(&access_key_id).await? {
                println!("Deleted access key {access_key_id}");
                Ok(())
            } else {
                Err(anyhow::anyhow!("no access key {access_key_id}"))
            }
        }
    };
    opened.store.close().await;
    result
}

async fn tail(data_dir: &Path, lines: usize, follow: bool) -> Result<()> {
    // The journal holds no secrets: no root key needed.
    let store = SqliteStore::open(&data_dir.join("keytrail.db"))
        .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    let mut last_seq = 0;
    let mut stdout = std::io::stdout();
    for row in store.recent_events(lines).await? {
        writeln!(stdout, "{}", row.record_json)?;
        last_seq = row.seq;
    }
    if follow {
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            }
            for row in store.events_after(last_seq, 1000).await? {
                writeln!(stdout, "{}", row.record_json)?;
                last_seq = row.seq;
            }
            stdout.flush()?;
        }
    }
    store.close().await;
    Ok(())
}
