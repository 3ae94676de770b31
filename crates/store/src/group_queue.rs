//! A queue whose receiving thread takes its jobs in groups: the event log (one `fdatasync` per
//! group of appends) and the store's writer (one transaction per group of writes and of
//! events to index).
//!
//! A group is worth waiting a little for: one `fdatasync` or one transaction costs about the
//! same whatever it carries. How the receiver waits matters as much: sleeping in short steps
//! and looking again costs a timer wake-up per step, blocking on a channel with a timeout a
//! wake-up per job sent, and under load each wake-up preempts a thread serving requests. So
//! the receiver parks once, saying how many more events it wants, and the send that brings
//! them (or any urgent job) unparks it; the deadline wakes it otherwise.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// When a group is taken as it is rather than waited for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupPolicy {
    /// Waits for a group carrying this many events...
    pub events: usize,
    /// ...for at most this long after the group's first job...
    pub wait: Duration,
    /// ...and only while `waits` allows.
    pub waits: Waits,
    /// A group holds at most this many events...
    pub max_events: usize,
    /// ...and this many jobs (a job over the limit waits for the next group).
    pub max_jobs: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waits {
    /// Whenever the group is short of its events.
    Always,
    /// Only after a group of several jobs: jobs come from many senders at once. A lone sender
    /// would only wait for itself.
    WhileConcurrent,
}

/// What the senders and the receiving thread share.
struct Shared {
    /// Events sent and not yet taken by the receiver.
    queued: AtomicUsize,
    /// While the receiver is parked for a group: how many queued events would complete it
    /// (0 when it is not waiting). The send that reaches it, or any urgent send, wakes it.
    wanted: AtomicUsize,
    /// The receiving thread, known once it takes its first group.
    receiver: OnceLock<Thread>,
}

struct Queued<T> {
    job: T,
    events: usize,
    urgent: bool,
}

/// The sending end; cloned by whoever sends.
pub(crate) struct GroupSender<T> {
    sender: mpsc::Sender<Queued<T>>,
    shared: Arc<Shared>,
}

/// The receiving thread's end.
pub(crate) struct GroupReceiver<T> {
    receiver: mpsc::Receiver<Queued<T>>,
    shared: Arc<Shared>,
    policy: GroupPolicy,
    /// A job that did not fit in the last group: the first of the next one.
    held: Option<Queued<T>>,
    /// The last group held several jobs.
    concurrent: bool,
}

pub(crate) fn group_queue<T>(policy: GroupPolicy) -> (GroupSender<T>, GroupReceiver<T>) {
    let (sender, receiver) = mpsc::channel();
    let shared = Arc::new(Shared {
        queued: AtomicUsize::new(0),
        wanted: AtomicUsize::new(0),
        receiver: OnceLock::new(),
    });
    (
        GroupSender {
            sender,
            shared: Arc::clone(&shared),
        },
        GroupReceiver {
            receiver,
            shared,
            policy,
            held: None,
            concurrent: false,
        },
    )
}

/// The receiving end is gone.
#[derive(Debug)]
pub(crate) struct Disconnected;

impl<T> GroupSender<T> {
    /// Queues `job`, which carries `events` events, and wakes the receiver if that completes
    /// the group it waits for. An `urgent` job ends any wait: its sender is waiting for it.
    pub(crate) fn send(&self, job: T, events: usize, urgent: bool) -> Result<(), Disconnected> {
        // Counted before it is sent, so the receiver never takes more than was counted; and
        // with the receiver's store of `wanted` before its load of `queued` (all SeqCst),
        // either the receiver sees this count or this send sees what it wants.
        let queued = self.shared.queued.fetch_add(events, Ordering::SeqCst) + events;
        let sent = self.sender.send(Queued {
            job,
            events,
            urgent,
        });
        if sent.is_err() {
            self.shared.queued.fetch_sub(events, Ordering::SeqCst);
            return Err(Disconnected);
        }
        let wanted = self.shared.wanted.load(Ordering::SeqCst);
        if wanted != 0
            && (urgent || queued >= wanted)
            && self.shared.wanted.swap(0, Ordering::SeqCst) != 0
            && let Some(receiver) = self.shared.receiver.get()
        {
            receiver.unpark();
        }
        Ok(())
    }
}

impl<T> GroupReceiver<T> {
    /// The next group: blocks until a job comes, then takes what is queued, waiting up to the
    /// policy's time for a full group where the policy says so. `None` once every sender is
    /// gone and nothing is left.
    pub(crate) fn next_group(&mut self) -> Option<Vec<T>> {
        self.shared.receiver.get_or_init(std::thread::current);
        let first = match self.held.take() {
            Some(first) => first,
            None => {
                let first = self.receiver.recv().ok()?;
                self.shared.queued.fetch_sub(first.events, Ordering::SeqCst);
                first
            }
        };
        let deadline = Instant::now() + self.policy.wait;
        let mut events = first.events;
        let mut urgent = first.urgent;
        let mut jobs = vec![first.job];
        loop {
            let full = self.take_queued(&mut jobs, &mut events, &mut urgent);
            let waits = match self.policy.waits {
                Waits::Always => true,
                Waits::WhileConcurrent => self.concurrent,
            };
            if full || urgent || !waits || events >= self.policy.events {
                break;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            let wanted = self.policy.events - events;
            self.shared.wanted.store(wanted, Ordering::SeqCst);
            // Sends counted before `wanted` was set did not look at it.
            if self.shared.queued.load(Ordering::SeqCst) < wanted {
                std::thread::park_timeout(left);
            }
            self.shared.wanted.store(0, Ordering::SeqCst);
        }
        self.concurrent = jobs.len() > 1;
        Some(jobs)
    }

    /// Moves queued jobs into the group while it has room; true once it is full.
    fn take_queued(&mut self, jobs: &mut Vec<T>, events: &mut usize, urgent: &mut bool) -> bool {
        loop {
            if *events >= self.policy.max_events || jobs.len() >= self.policy.max_jobs {
                return true;
            }
            let Ok(next) = self.receiver.try_recv() else {
                return false;
            };
            self.shared.queued.fetch_sub(next.events, Ordering::SeqCst);
            if *events + next.events > self.policy.max_events {
                self.held = Some(next);
                return true;
            }
            *events += next.events;
            *urgent |= next.urgent;
            jobs.push(next.job);
        }
    }
}

impl<T> Clone for GroupSender<T> {
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
        waits: Waits::WhileConcurrent,
        max_events: 6,
        max_jobs: 100,
    };

    /// Sends `jobs` from another thread, one every 20 ms.
    fn send_slowly(
        tx: &GroupSender<u32>,
        jobs: Vec<(u32, usize, bool)>,
    ) -> std::thread::JoinHandle<()> {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for (job, events, urgent) in jobs {
                std::thread::sleep(Duration::from_millis(20));
                tx.send(job, events, urgent).unwrap();
            }
        })
    }

    #[test]
    fn a_lone_job_is_taken_at_once() {
        let (tx, mut rx) = group_queue::<u32>(POLICY);
        tx.send(1, 1, false).unwrap();
        let started = Instant::now();
        assert_eq!(rx.next_group(), Some(vec![1]));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn queued_jobs_are_taken_together_up_to_the_maximum_events() {
        let (tx, mut rx) = group_queue::<u32>(POLICY);
        for i in 0..4 {
            tx.send(i, 2, false).unwrap();
        }
        // 2 + 2 + 2 events reach the maximum of 6; the last job starts the next group.
        assert_eq!(rx.next_group(), Some(vec![0, 1, 2]));
        assert_eq!(rx.next_group(), Some(vec![3]));
        assert_eq!(rx.shared.queued.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_job_that_would_overfill_a_group_starts_the_next_one() {
        let (tx, mut rx) = group_queue::<u32>(POLICY);
        tx.send(0, 5, false).unwrap();
        tx.send(1, 3, false).unwrap();
        tx.send(2, 1, false).unwrap();
        assert_eq!(rx.next_group(), Some(vec![0]));
        assert_eq!(rx.next_group(), Some(vec![1, 2]));
    }

    #[test]
    fn a_group_holds_at_most_the_maximum_jobs() {
        let policy = GroupPolicy {
            max_jobs: 2,
            max_events: 100,
            ..POLICY
        };
        let (tx, mut rx) = group_queue::<u32>(policy);
        for i in 0..5 {
            tx.send(i, 0, true).unwrap();
        }
        assert_eq!(rx.next_group(), Some(vec![0, 1]));
        assert_eq!(rx.next_group(), Some(vec![2, 3]));
        assert_eq!(rx.next_group(), Some(vec![4]));
    }

    #[test]
    fn after_concurrent_jobs_the_receiver_waits_until_the_group_is_full() {
        let (tx, mut rx) = group_queue::<u32>(POLICY);
        tx.send(0, 1, false).unwrap();
        tx.send(1, 1, false).unwrap();
        assert_eq!(rx.next_group(), Some(vec![0, 1]));
        let sender = send_slowly(&tx, (2..6).map(|i| (i, 1, false)).collect());
        let started = Instant::now();
        // The group is complete with the fourth event, long before the 5 s deadline: the send
        // that completes it wakes the receiver.
        assert_eq!(rx.next_group(), Some(vec![2, 3, 4, 5]));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(60), "{waited:?}");
        assert!(waited < Duration::from_secs(4), "{waited:?}");
        sender.join().unwrap();
    }

    #[test]
    fn an_urgent_job_ends_the_wait() {
        let policy = GroupPolicy {
            waits: Waits::Always,
            ..POLICY
        };
        let (tx, mut rx) = group_queue::<u32>(policy);
        tx.send(0, 1, false).unwrap();
        let sender = send_slowly(&tx, vec![(1, 1, false), (2, 0, true)]);
        let started = Instant::now();
        // Two of the four events the group waits for, then a job that ends the wait.
        assert_eq!(rx.next_group(), Some(vec![0, 1, 2]));
        assert!(started.elapsed() < Duration::from_secs(4));
        sender.join().unwrap();
    }

    #[test]
    fn an_incomplete_group_goes_at_its_deadline() {
        let policy = GroupPolicy {
            wait: Duration::from_millis(100),
            waits: Waits::Always,
            ..POLICY
        };
        let (tx, mut rx) = group_queue::<u32>(policy);
        tx.send(0, 1, false).unwrap();
        let started = Instant::now();
        assert_eq!(rx.next_group(), Some(vec![0]));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(waited < Duration::from_secs(4), "{waited:?}");
    }

    #[test]
    fn the_receiver_ends_when_every_sender_is_gone() {
        let (tx, mut rx) = group_queue::<u32>(POLICY);
        tx.send(7, 1, false).unwrap();
        drop(tx);
        assert_eq!(rx.next_group(), Some(vec![7]));
        assert_eq!(rx.next_group(), None);
    }
}
