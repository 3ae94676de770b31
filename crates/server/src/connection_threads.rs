//! Connections served on threads of their own, each thread a single-threaded tokio runtime.
//!
//! A call waits for its event to be durable: the event log's thread wakes the call when its
//! group is synced. On tokio's work-stealing runtime that wake lands in the shared queue and any
//! worker picks the call up, so half the time its buffers, allocated on one core, are used and
//! freed on the other (cache misses in the allocator's free lists, ~6 % of the request threads'
//! time under `bench/profile.sh`). Pinning each connection to one thread keeps a call on the
//! core that started it; measured in `docs/benchmarks.md` ("Connections pinned to threads").
//! The price is that a connection cannot move to an idle thread: new connections go to the
//! thread serving the fewest, and slow CPU work (RSA key generation) runs on the blocking pool.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How soon a connection thread's runtime always has a timer due (see `keep_a_timer_near`).
const NEAR_TIMER: std::time::Duration = std::time::Duration::from_secs(1);

/// tokio's timer driver wakes its own thread (a write to its eventfd, and one more turn of
/// epoll) whenever a timer is registered that is due before the wake it planned when it last
/// parked; with no timer in its wheel it planned none. Under load, every connection of a
/// thread can be waiting for its event to be durable, holding no timer, when the thread parks;
/// the answers then go out together and each connection's next header timer (hyper's 30
/// seconds) cost such a wake-up: 0.3 per request, measured. A timer always due within a second
/// keeps the planned wake nearer than any header timer.
async fn keep_a_timer_near() {
    let mut ticks = tokio::time::interval(NEAR_TIMER);
    loop {
        ticks.tick().await;
    }
}

/// The threads connections are handed to; dropping this ends them (and closes the connections
/// still open on them).
pub(crate) struct ConnectionThreads {
    threads: Vec<ConnectionThread>,
}

struct ConnectionThread {
    jobs: mpsc::UnboundedSender<Job>,
    /// Connections open on this thread.
    open: Arc<AtomicUsize>,
}

/// Counts a connection on its thread while it lives, however it ends.
struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnectionThreads {
    /// Starts `count` threads named `keytrail-conn-N`. Threads that cannot be started are left
    /// out (logged); with none, connections are served on the caller's runtime.
    pub(crate) fn start(count: usize) -> Self {
        let threads = (0..count)
            .filter_map(|n| match ConnectionThread::start(n) {
                Ok(thread) => Some(thread),
                Err(e) => {
                    tracing::warn!(error = %e, thread = n, "could not start a connection thread");
                    None
                }
            })
            .collect();
        Self { threads }
    }

    /// Serves one connection: `connection` turns the accepted socket into the future that
    /// serves it, on the thread that has the fewest connections open.
    pub(crate) fn serve<F, Fut>(&self, socket: std::net::TcpStream, connection: F)
    where
        F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(thread) = self
            .threads
            .iter()
            .min_by_key(|t| t.open.load(Ordering::Relaxed))
        else {
            tokio::spawn(serve_socket(socket, connection, None));
            return;
        };
        thread.open.fetch_add(1, Ordering::Relaxed);
        let open = OpenConnection(Arc::clone(&thread.open));
        let job: Job = Box::pin(serve_socket(socket, connection, Some(open)));
        if let Err(mpsc::error::SendError(job)) = thread.jobs.send(job) {
            // The thread has ended (its runtime could not be built): serve here instead.
            tokio::spawn(job);
        }
    }

    /// Connections open on each thread, in thread order.
    #[cfg(test)]
    fn open_counts(&self) -> Vec<usize> {
        self.threads
            .iter()
            .map(|t| t.open.load(Ordering::Relaxed))
            .collect()
    }
}

impl ConnectionThread {
    fn start(n: usize) -> std::io::Result<Self> {
        let (jobs, mut received) = mpsc::unbounded_channel::<Job>();
        std::thread::Builder::new()
            .name(format!("keytrail-conn-{n}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        // Its jobs come back to `serve`, which runs them on its own runtime.
                        tracing::warn!(error = %e, thread = n, "no runtime for a connection thread");
                        return;
                    }
                };
                runtime.block_on(async move {
                    // Answers to this thread's event appends arrive a group at a time, with one
                    // wake-up of this thread instead of one per call.
                    keytrail_store::deliver_appends_on_this_thread();
                    tokio::spawn(keep_a_timer_near());
                    while let Some(job) = received.recv().await {
                        tokio::spawn(job);
                    }
                });
            })?;
        Ok(Self {
            jobs,
            open: Arc::new(AtomicUsize::new(0)),
        })
    }
}

/// Registers the socket with the runtime of the thread it is served on, then serves it.
async fn serve_socket<F, Fut>(
    socket: std::net::TcpStream,
    connection: F,
    open: Option<OpenConnection>,
) where
    F: FnOnce(tokio::net::TcpStream) -> Fut,
    Fut: Future<Output = ()>,
{
    let _open = open;
    match tokio::net::TcpStream::from_std(socket) {
        Ok(stream) => connection(stream).await,
        Err(e) => tracing::debug!(error = %e, "could not register an accepted connection"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connection to `listener`: the client's end and the accepted socket.
    async fn connect(
        listener: &tokio::net::TcpListener,
    ) -> (tokio::net::TcpStream, std::net::TcpStream) {
        let address = listener.local_addr().expect("address");
        let client = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        (client, accepted.into_std().expect("std socket"))
    }

    /// Accepts one connection on `listener` and serves it by answering each byte with the digit
    /// of the connection thread serving it, returning the client's end.
    async fn connect_and_serve(
        threads: &ConnectionThreads,
        listener: &tokio::net::TcpListener,
    ) -> tokio::net::TcpStream {
        let (client, socket) = connect(listener).await;
        threads.serve(socket, |mut stream| async move {
            let mut byte = [0u8; 1];
            while stream.read_exact(&mut byte).await.is_ok() {
                let name = std::thread::current()
                    .name()
                    .and_then(|n| n.as_bytes().get(14).copied())
                    .unwrap_or(b'?');
                if stream.write_all(&[name]).await.is_err() {
                    break;
                }
            }
        });
        client
    }

    async fn thread_of(client: &mut tokio::net::TcpStream) -> u8 {
        client.write_all(b"?").await.expect("write");
        let mut reply = [0u8; 1];
        client.read_exact(&mut reply).await.expect("read");
        reply[0]
    }

    #[tokio::test]
    async fn connections_go_to_the_thread_with_the_fewest_and_are_counted_until_they_close() {
        let threads = ConnectionThreads::start(2);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut first = connect_and_serve(&threads, &listener).await;
        let mut second = connect_and_serve(&threads, &listener).await;
        assert_eq!(threads.open_counts(), vec![1, 1]);
        // Each connection is served on a thread of its own, named keytrail-conn-N.
        let (a, b) = (thread_of(&mut first).await, thread_of(&mut second).await);
        assert_eq!((a, b), (b'0', b'1'));

        drop(first);
        for _ in 0..200 {
            if threads.open_counts() == vec![0, 1] {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(threads.open_counts(), vec![0, 1]);
        // The next connection fills the thread that has fewer.
        let mut third = connect_and_serve(&threads, &listener).await;
        assert_eq!(thread_of(&mut third).await, b'0');
        assert_eq!(threads.open_counts(), vec![1, 1]);
        assert_eq!(thread_of(&mut second).await, b'1');
    }

    #[tokio::test]
    async fn without_threads_connections_are_served_on_the_callers_runtime() {
        let threads = ConnectionThreads::start(0);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let (mut client, socket) = connect(&listener).await;
        threads.serve(socket, |mut stream| async move {
            let _ = stream.write_all(b"served").await;
        });
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.expect("read");
        assert_eq!(reply, b"served");
    }
}
