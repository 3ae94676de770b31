//! The queue of appends to the event log, and how the log's thread takes them in groups.
//!
//! One `fdatasync` costs the same whatever it carries, so while appends come from many callers
//! at once, the log's thread waits a little for a group of [`GroupPolicy::events`] before
//! syncing. It used to wait by sleeping in short steps and looking again: each step is a timer
//! wake-up of the thread, and under load each of those preempts a thread serving requests.
//! Instead it parks once, saying how many more events it wants, and the append that brings
//! that many wakes it; the deadline wakes it otherwise. A blocked channel receiver would be
//! woken by every single append instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::Thread;
use std::time::{Duration, Instant};

/// When the log syncs what it has rather than waiting for more.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupPolicy {
    /// Waits for a group of this many events...
    pub events: usize,
    /// ...for at most this long after the group's first append...
    pub wait: Duration,
    /// ...and takes at most this many into one group.
    pub max_events: usize,
}

/// What the appending side and the log's thread share.
struct Shared {
    /// Events sent and not yet taken by the log's thread.
    queued: AtomicUsize,
    /// While the log's thread is parked for a group: how many queued events would complete it
    /// (0 when it is not waiting). The append that reaches it wakes the thread.
    wanted: AtomicUsize,
    /// The log's thread, set once it starts taking groups.
    consumer: std::sync::OnceLock<Thread>,
}

/// The appending end; cloned by whoever appends.
pub(crate) struct AppendSender<T> {
    sender: mpsc::Sender<(T, usize)>,
    shared: Arc<Shared>,
}

/// The log thread's end.
pub(crate) struct AppendReceiver<T> {
    receiver: mpsc::Receiver<(T, usize)>,
    shared: Arc<Shared>,
    policy: GroupPolicy,
    /// Several appends in the last group: appends are concurrent, worth waiting for.
    concurrent: bool,
}

pub(crate) fn append_queue<T>(policy: GroupPolicy) -> (AppendSender<T>, AppendReceiver<T>) {
    let (sender, receiver) = mpsc::channel();
    let shared = Arc::new(Shared {
        queued: AtomicUsize::new(0),
        wanted: AtomicUsize::new(0),
        consumer: std::sync::OnceLock::new(),
    });
    (
        AppendSender {
            sender,
            shared: Arc::clone(&shared),
        },
        AppendReceiver {
            receiver,
            shared,
            policy,
            concurrent: false,
        },
    )
}

/// The receiving end is gone.
#[derive(Debug)]
pub(crate) struct Disconnected;

impl<T> AppendSender<T> {
    /// Queues `job`, which carries `events` events, and wakes the log's thread if that
    /// completes the group it waits for.
    pub(crate) fn send(&self, job: T, events: usize) -> Result<(), Disconnected> {
        // Counted before it is sent, so the log never takes more than was counted; and with
        // the log's store of `wanted` before its load of `queued` (all SeqCst), either the log
        // sees this count or this append sees what it wants.
        let queued = self.shared.queued.fetch_add(events, Ordering::SeqCst) + events;
        if self.sender.send((job, events)).is_err() {
            self.shared.queued.fetch_sub(events, Ordering::SeqCst);
            return Err(Disconnected);
        }
        let wanted = self.shared.wanted.load(Ordering::SeqCst);
        if wanted != 0
            && queued >= wanted
            && self.shared.wanted.swap(0, Ordering::SeqCst) != 0
            && let Some(consumer) = self.shared.consumer.get()
        {
            consumer.unpark();
        }
        Ok(())
    }
}

impl<T> AppendReceiver<T> {
    /// The next group: blocks until an append comes, then takes what is queued, waiting up to
    /// the policy's time for a full group while appends are concurrent. `None` once every
    /// sender is gone and nothing is left.
    pub(crate) fn next_group(&mut self) -> Option<Vec<T>> {
        self.shared.consumer.get_or_init(std::thread::current);
        let first = self.receiver.recv().ok()?;
        let deadline = Instant::now() + self.policy.wait;
        let mut count = first.1;
        self.shared.queued.fetch_sub(first.1, Ordering::SeqCst);
        let mut jobs = vec![first.0];
        loop {
            count += self.take_queued(&mut jobs, count);
            if !self.concurrent || count >= self.policy.events || count >= self.policy.max_events {
                break;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            let wanted = self.policy.events - count;
            self.shared.wanted.store(wanted, Ordering::SeqCst);
            // Appends counted before `wanted` was set did not look at it.
            if self.shared.queued.load(Ordering::SeqCst) < wanted {
                std::thread::park_timeout(left);
            }
            self.shared.wanted.store(0, Ordering::SeqCst);
        }
        self.concurrent = jobs.len() > 1;
        Some(jobs)
    }

    /// Moves what is queued into `jobs` while the group is below the policy's maximum;
    /// returns how many events it took.
    fn take_queued(&mut self, jobs: &mut Vec<T>, mut count: usize) -> usize {
        let before = count;
        while count < self.policy.max_events {
            let Ok((job, events)) = self.receiver.try_recv() else {
                break;
            };
            self.shared.queued.fetch_sub(events, Ordering::SeqCst);
            count += events;
            jobs.push(job);
        }
        count - before
    }
}

impl<T> Clone for AppendSender<T> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: GroupPolicy = GroupPolicy {
        events: 4,
        wait: Duration::from_secs(5),
        max_events: 6,
    };

    #[test]
    fn a_lone_append_is_taken_at_once() {
        let (tx, mut rx) = append_queue::<u32>(POLICY);
        tx.send(1, 1).unwrap();
        let started = Instant::now();
        assert_eq!(rx.next_group(), Some(vec![1]));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn queued_appends_are_taken_together_up_to_the_maximum() {
        let (tx, mut rx) = append_queue::<u32>(POLICY);
        for i in 0..4 {
            tx.send(i, 2).unwrap();
        }
        // 2 + 2 + 2 events reach the maximum of 6; the last append waits for the next group.
        assert_eq!(rx.next_group(), Some(vec![0, 1, 2]));
        assert_eq!(rx.next_group(), Some(vec![3]));
        assert_eq!(rx.shared.queued.load(Ordering::Acquire), 0);
    }

    #[test]
    fn after_concurrent_appends_the_log_waits_until_the_group_is_full() {
        let (tx, mut rx) = append_queue::<u32>(POLICY);
        tx.send(0, 1).unwrap();
        tx.send(1, 1).unwrap();
        assert_eq!(rx.next_group(), Some(vec![0, 1]));
        let sender = tx.clone();
        let appender = std::thread::spawn(move || {
            for i in 2..6 {
                std::thread::sleep(Duration::from_millis(20));
                sender.send(i, 1).unwrap();
            }
        });
        let started = Instant::now();
        // The group is complete with the fourth event, long before the 5 s deadline: the
        // append that completes it wakes the log.
        assert_eq!(rx.next_group(), Some(vec![2, 3, 4, 5]));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(60), "{waited:?}");
        assert!(waited < Duration::from_secs(4), "{waited:?}");
        appender.join().unwrap();
    }

    #[test]
    fn an_incomplete_group_goes_at_its_deadline() {
        let policy = GroupPolicy {
            wait: Duration::from_millis(100),
            ..POLICY
        };
        let (tx, mut rx) = append_queue::<u32>(policy);
        tx.send(0, 1).unwrap();
        tx.send(1, 1).unwrap();
        assert_eq!(rx.next_group(), Some(vec![0, 1]));
        tx.send(2, 1).unwrap();
        let started = Instant::now();
        assert_eq!(rx.next_group(), Some(vec![2]));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(waited < Duration::from_secs(4), "{waited:?}");
    }

    #[test]
    fn the_receiver_ends_when_every_sender_is_gone() {
        let (tx, mut rx) = append_queue::<u32>(POLICY);
        tx.send(7, 1).unwrap();
        drop(tx);
        assert_eq!(rx.next_group(), Some(vec![7]));
        assert_eq!(rx.next_group(), None);
    }
}
