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
