//! Answers to event appends, handed to the waiting calls by a task on their own thread.
//!
//! The event log's thread answers each append once its group is synced. Sent straight from that
//! thread, each answer wakes its call from outside the call's runtime, which on a
//! single-threaded runtime costs a write to the runtime's eventfd (a syscall, and a wake-up of
//! its thread) per call. A thread that serves many calls on one runtime for its whole life (the
//! server's connection threads) registers a delivery task instead
//! ([`deliver_appends_on_this_thread`]): the log hands that task all of a group's answers for
//! the thread at once and wakes it once, and it wakes the waiting calls locally.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, oneshot};

use crate::StoreResult;

pub(crate) type AppendReply = oneshot::Sender<StoreResult<()>>;

/// The answers waiting for one thread's delivery task.
#[derive(Default)]
pub(crate) struct Delivery {
    ready: Mutex<Vec<(AppendReply, StoreResult<()>)>>,
    wake: Notify,
}

thread_local! {
    static THIS_THREAD: RefCell<Option<Arc<Delivery>>> = const { RefCell::new(None) };
}

/// Delivers the answers to this thread's appends through a task on the current runtime, which
/// must keep running on this thread for as long as the thread appends events (appends made
/// after it stops would never be answered).
pub fn deliver_appends_on_this_thread() {
    let delivery = Arc::new(Delivery::default());
    tokio::spawn(deliver(Arc::clone(&delivery)));
    THIS_THREAD.with(|slot| *slot.borrow_mut() = Some(delivery));
}

/// This thread's delivery task, if it has one.
pub(crate) fn this_thread() -> Option<Arc<Delivery>> {
    THIS_THREAD.with(|slot| slot.borrow().clone())
}

async fn deliver(delivery: Arc<Delivery>) {
    loop {
        delivery.wake.notified().await;
        let ready = std::mem::take(
            &mut *delivery
                .ready
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (reply, outcome) in ready {
            let _ = reply.send(outcome);
        }
    }
}

/// Answers a group's appends with `outcome()` each: directly, or through their thread's
/// delivery task, woken once per thread.
pub(crate) fn answer_all(
    replies: Vec<(AppendReply, Option<Arc<Delivery>>)>,
    outcome: impl Fn() -> StoreResult<()>,
) {
    let mut to_wake: Vec<Arc<Delivery>> = Vec::new();
    for (reply, delivery) in replies {
        let Some(delivery) = delivery else {
            let _ = reply.send(outcome());
            continue;
        };
        delivery
            .ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((reply, outcome()));
        if !to_wake.iter().any(|d| Arc::ptr_eq(d, &delivery)) {
            to_wake.push(delivery);
        }
    }
    for delivery in to_wake {
        delivery.wake.notify_one();
    }
}
