//! What must survive: credentials and the journal across restarts, every acknowledged event
//! across a SIGKILL, and the first-start root key.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use aws_sdk_sts::operation::RequestId;
use common::*;
use tokio::sync::Mutex;

#[tokio::test]
async fn credentials_and_journal_survive_a_restart() {
    let mut server = TestServer::start_with("", &[]);
    let created = server.stdout.clone();
    let key = created
        .lines()
        .find_map(|l| l.strip_prefix("export AWS_ACCESS_KEY_ID="))
        .expect("first start prints the access key")
        .to_string();
    let secret = created
        .lines()
        .find_map(|l| l.strip_prefix("export AWS_SECRET_ACCESS_KEY="))
        .expect("first start prints the secret")
        .to_string();
    let saved = server.data_dir().join("root-credentials");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(std::fs::read_to_string(&saved).unwrap().contains(&secret));
    let log = std::fs::read_to_string(server.data.path().join("server.log")).unwrap();
    assert!(
        !log.contains(&secret),
        "the secret must never reach the logs"
    );

    let client = sts_client(&server.url, &key, &secret).await;
    let first = client.get_caller_identity().send().await.unwrap();
    assert_eq!(first.account(), Some("000000000000"));
    let first_request = first.request_id().unwrap().to_string();

    server.restart();
    assert!(
        !server.stdout.contains("export AWS_SECRET_ACCESS_KEY"),
        "a restart creates no new key"
    );
    let client = sts_client(&server.url, &key, &secret).await;
    let second = client.get_caller_identity().send().await.unwrap();
    let second_request = second.request_id().unwrap().to_string();
    let events = server.events();
    assert!(
        events
            .iter()
            .any(|e| e["requestID"] == first_request.as_str())
    );
    assert!(
        events
            .iter()
            .any(|e| e["requestID"] == second_request.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_burst_loses_no_acknowledged_event() {
    let mut server = TestServer::start();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let client = sts_client(&server.url, ROOT_KEY, ROOT_SECRET).await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let client = client.clone();
        let acknowledged = Arc::clone(&acknowledged);
        tasks.push(tokio::spawn(async move {
            for _ in 0..200 {
                match client.get_caller_identity().send().await {
                    Ok(out) => acknowledged
                        .lock()
                        .await
                        .push(out.request_id().unwrap_or_default().to_string()),
                    Err(_) => break,
                }
            }
        }));
    }
    // Let the burst run, then kill the server mid-flight.
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if acknowledged.lock().await.len() >= 300 {
            break;
        }
    }
    server.sigkill();
    for t in tasks {
        let _ = t.await;
    }
    let acknowledged = acknowledged.lock().await.clone();
    assert!(acknowledged.len() >= 300);
    let journaled: HashSet<String> = server
        .events()
        .iter()
        .filter_map(|e| e["requestID"].as_str().map(str::to_string))
        .collect();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !journaled.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged calls have no event",
        lost.len(),
        acknowledged.len()
    );
}

#[tokio::test]
async fn https_with_a_self_signed_certificate() {
    let server = TestServer::start_with(DECLARED_CREDENTIALS, &["--tls-self-signed"]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let cert_pem = std::fs::read(server.data_dir().join("tls/cert.pem")).expect("cert.pem");
    let cert = reqwest::Certificate::from_pem(&cert_pem).expect("PEM certificate");
    let http = reqwest::Client::builder()
        .add_root_certificate(cert)
        .build()
        .unwrap();
    let url = server.url.replace("127.0.0.1", "localhost") + "/";
    let body = b"Action=GetCallerIdentity&Version=2011-06-15";
    let signed = sign(
        "POST",
        &url,
        &[("content-type", "application/x-www-form-urlencoded")],
        body,
        root(),
        scope("sts"),
    );
    let resp = send(&http, "POST", &url, &signed.headers, body.to_vec()).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let request_id = resp.request_id();
    let event = server.event_for_request(&request_id);
    let tls = &event["tlsDetails"];
    assert!(
        tls["tlsVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("TLSv1.")),
        "{event}"
    );
    assert!(
        tls["cipherSuite"]
            .as_str()
            .is_some_and(|c| c.starts_with("TLS_"))
    );
    assert!(
        tls["clientProvidedHostHeader"]
            .as_str()
            .is_some_and(|h| h.starts_with("localhost:"))
    );
    // Plain HTTP to the TLS port is refused, not answered.
    let plain = reqwest::Client::new()
        .get(server.url.replace("https://", "http://") + "/_keytrail/health")
        .send()
        .await;
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status() != 200));
}

#[tokio::test]
async fn offline_credentials_commands_manage_keys_of_a_running_server() {
    let server = TestServer::start();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(keytrail_bin())
            .arg("--data-dir")
            .arg(server.data_dir())
            .args(args)
            .output()
            .expect("keytrail credentials");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, created) = run(&[
        "credentials",
        "create",
        "--account-id",
        "777788889999",
        "--user",
        "bob",
    ]);
    assert!(ok, "{created}");
    let key = created
        .lines()
        .find_map(|l| l.strip_prefix("export AWS_ACCESS_KEY_ID="))
        .expect("access key line")
        .to_string();
    let secret = created
        .lines()
        .find_map(|l| l.strip_prefix("export AWS_SECRET_ACCESS_KEY="))
        .expect("secret line")
        .to_string();
    let (ok, listed) = run(&["credentials", "list"]);
    assert!(ok);
    assert!(listed.contains(&key) && listed.contains("bob"));
    assert!(!listed.contains(&secret), "list never shows secrets");

    let bob = sts_client(&server.url, &key, &secret).await;
    let out = bob
        .get_caller_identity()
        .send()
        .await
        .expect("new key works");
    assert_eq!(out.arn(), Some("arn:aws:iam::777788889999:user/bob"));

    let (ok, _) = run(&["credentials", "delete", &key]);
    assert!(ok);
    let (ok, _) = run(&["credentials", "delete", &key]);
    assert!(!ok, "deleting a missing key fails");
    // The server's key cache holds entries for 5 seconds.
    tokio::time::sleep(std::time::Duration::from_millis(5500)).await;
    let err = bob
        .get_caller_identity()
        .send()
        .await
        .expect_err("a deleted key is refused");
    use aws_sdk_sts::error::ProvideErrorMetadata;
    assert_eq!(
        err.into_service_error().code(),
        Some("InvalidClientTokenId")
    );
}

#[tokio::test]
async fn https_with_certificate_files() {
    // A first server generates a certificate; a second one is given it as files.
    let first = TestServer::start_with(DECLARED_CREDENTIALS, &["--tls-self-signed"]);
    let tls = first.data_dir().join("tls");
    let cert = tls.join("cert.pem");
    let key = tls.join("key.pem");
    let server = TestServer::start_with(
        DECLARED_CREDENTIALS,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(server.url.starts_with("https://"));
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let resp = http
        .get(server.url.clone() + "/_keytrail/health")
        .send()
        .await
        .expect("TLS with the given certificate");
    assert_eq!(resp.status(), 200);
}
