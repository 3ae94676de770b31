//! TLS with rustls: a certificate from PEM files, or a self-signed one generated once and kept in
//! the data directory so clients can be pointed at it (`AWS_CA_BUNDLE=<data>/tls/cert.pem`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::ServerError;
use crate::config::TlsMode;

/// Names the self-signed certificate is valid for.
const SELF_SIGNED_NAMES: &[&str] = &["localhost", "*.localhost", "127.0.0.1", "::1"];

/// Where the self-signed certificate and key live.
pub fn self_signed_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

fn ensure_self_signed(data_dir: &Path) -> Result<(PathBuf, PathBuf), ServerError> {
    let (cert_path, key_path) = self_signed_paths(data_dir);
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let tls_err = |e: String| ServerError::Tls(e);
    let names: Vec<String> = SELF_SIGNED_NAMES.iter().map(|s| s.to_string()).collect();
    let certified =
        rcgen::generate_simple_self_signed(names).map_err(|e| tls_err(e.to_string()))?;
    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| tls_err(e.to_string()))?;
    }
    // The key first, private from creation; the certificate is public.
    let _ = std::fs::remove_file(&key_path);
    keytrail_crypto::write_private_file(&key_path, certified.key_pair.serialize_pem().as_bytes())
        .map_err(|e| tls_err(format!("{}: {e}", key_path.display())))?;
    std::fs::write(&cert_path, certified.cert.pem())
        .map_err(|e| tls_err(format!("{}: {e}", cert_path.display())))?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed TLS certificate");
    Ok((cert_path, key_path))
}

/// The rustls configuration for `mode`, or `None` for plain HTTP.
pub fn server_config(
    mode: &TlsMode,
    data_dir: &Path,
) -> Result<Option<Arc<rustls::ServerConfig>>, ServerError> {
    let (cert_path, key_path) = match mode {
        TlsMode::Off => return Ok(None),
        TlsMode::Files { cert, key } => (cert.clone(), key.clone()),
        TlsMode::SelfSigned => ensure_self_signed(data_dir)?,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ServerError::Tls(format!("{}: {e}", cert_path.display())))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!(
            "{}: no certificate found",
            cert_path.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| ServerError::Tls(format!("{}: {e}", key_path.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// `tlsVersion` and `cipherSuite` as CloudTrail writes them (`TLSv1.3`, `TLS_AES_128_GCM_SHA256`).
pub fn describe(conn: &rustls::ServerConnection) -> Option<(String, String)> {
    let version = match conn.protocol_version()? {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
        other => format!("{other:?}"),
    };
    let suite = conn.negotiated_cipher_suite()?.suite();
    let name = suite
        .as_str()
        .map_or_else(|| format!("{suite:?}"), |s| s.replacen("TLS13_", "TLS_", 1));
    Some((version, name))
}
