//! The null server: keytrail's own accept loop and axum router, answering every request with a
//! fixed 149-byte JSON body — no authentication, no store. Benchmarks measure it under the same
//! load as keytrail to know the machine's ceiling for this HTTP stack.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

/// The same allocator as keytrail, so the ceiling is measured on the same stack.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The size of a typical small KMS/STS JSON answer.
const BODY: &str = r#"{"Account":"000000000000","Arn":"arn:aws:iam::000000000000:root","UserId":"000000000000","KeyId":"00000000-0000-0000-0000-000000000000","Padding":""}"#;

async fn fixed() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/x-amz-json-1.1")], BODY)
}

#[tokio::main]
async fn main() {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 4590)));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    let local = listener.local_addr().map_or(addr, |a| a);
    println!("null server listening on http://{local}");
    let router = Router::new().fallback(fixed);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let threads = keytrail_server::config::default_connection_threads();
    keytrail_server::serve_router(
        listener,
        None,
        router,
        Duration::from_secs(1),
        threads,
        shutdown,
    )
    .await;
}
