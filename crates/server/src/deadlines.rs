//! The deadline of JSON and query calls, kept without a timer per call.
//!
//! A tokio timer per call cost a registration in the runtime's timer wheel (its lock, an
//! insert) and its removal on every call, about 1,300 instructions of a GenerateDataKey.
//! Instead, the calls in flight are listed with their start, and one task looks at the list a
//! few times per deadline and wakes the calls that ran out. A call may so overrun its deadline
//! by one look. (The eventfd writes tokio's timer driver made under load came from hyper's
//! header timers, not from these: see `connection_threads::keep_a_timer_near`.)

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::{Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::AppState;

/// How often the calls in flight are looked at: a sixteenth of the deadline, within these.
const FEWEST_LOOKS: Duration = Duration::from_secs(1);
const MOST_LOOKS: Duration = Duration::from_millis(10);

pub(crate) struct CallDeadlines {
    limit: Duration,
    calls: Mutex<Calls>,
}

#[derive(Default)]
struct Calls {
    /// Slots of calls in flight; `None` marks a free one, listed in `free`.
    slots: Vec<Option<Call>>,
    free: Vec<usize>,
}

struct Call {
    started: Instant,
    /// Whom to wake when the call runs out; taken when it does.
    waker: Option<Waker>,
    expired: bool,
}

/// A call's slot, given back when the call ends however it ends.
struct Slot<'a> {
    deadlines: &'a CallDeadlines,
    index: Option<usize>,
}

impl CallDeadlines {
    pub(crate) fn new(limit: Duration) -> Self {
        Self {
            limit,
            calls: Mutex::default(),
        }
    }

    /// `call`'s output, or `None` when it did not finish within the deadline.
    pub(crate) async fn run<F: Future>(&self, call: F) -> Option<F::Output> {
        let started = Instant::now();
        let mut call = pin!(call);
        let mut slot = Slot {
            deadlines: self,
            index: None,
        };
        poll_fn(|cx| match call.as_mut().poll(cx) {
            Poll::Ready(output) => Poll::Ready(Some(output)),
            Poll::Pending if slot.expired(cx, started) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        })
        .await
    }

    /// Looks at the calls in flight as long as the server's state lives.
    pub(crate) async fn watch(state: Weak<AppState>) {
        let Some(limit) = state.upgrade().map(|s| s.call_deadlines.limit) else {
            return;
        };
        let mut looks = tokio::time::interval((limit / 16).clamp(MOST_LOOKS, FEWEST_LOOKS));
        looks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            looks.tick().await;
            let Some(state) = state.upgrade() else {
                return;
            };
            state.call_deadlines.expire(Instant::now());
        }
    }

    /// Marks the calls that started `limit` or longer before `now` as expired and wakes them.
    fn expire(&self, now: Instant) {
        let mut expired = Vec::new();
        for call in self.lock().slots.iter_mut().flatten() {
            if !call.expired && now.saturating_duration_since(call.started) >= self.limit {
                call.expired = true;
                expired.extend(call.waker.take());
            }
        }
        // Woken outside the lock: a waker may run its task's poll (and so this lock) at once.
        expired.into_iter().for_each(Waker::wake);
    }

    fn lock(&self) -> MutexGuard<'_, Calls> {
        // The lock guards no invariant a panic could break halfway.
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Slot<'_> {
    /// Whether the pending call has run out; otherwise it is listed (or its waker updated) so
    /// that the watch can wake it when it does.
    fn expired(&mut self, cx: &Context<'_>, started: Instant) -> bool {
        let limit = self.deadlines.limit;
        if limit.is_zero() {
            return true;
        }
        let mut calls = self.deadlines.lock();
        match self.index.and_then(|i| calls.slots.get_mut(i)?.as_mut()) {
            Some(call) if call.expired => true,
            Some(call) => {
                if !call.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    call.waker = Some(cx.waker().clone());
                }
                false
            }
            None => {
                let call = Call {
                    started,
                    waker: Some(cx.waker().clone()),
                    expired: false,
                };
                let index = match calls.free.pop() {
                    Some(i) => {
                        calls.slots[i] = Some(call);
                        i
                    }
                    None => {
                        calls.slots.push(Some(call));
                        calls.slots.len() - 1
                    }
                };
                self.index = Some(index);
                false
            }
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let Some(index) = self.index else {
            return;
        };
        let waker = {
            let mut calls = self.deadlines.lock();
            let waker = calls.slots[index].take().and_then(|call| call.waker);
            calls.free.push(index);
            waker
        };
        drop(waker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll_once<F: Future>(future: std::pin::Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_call_that_finishes_is_answered_and_leaves_no_slot_behind() {
        let deadlines = CallDeadlines::new(Duration::from_secs(60));
        let waker = Waker::noop();
        let mut call = pin!(deadlines.run(async { 7 }));
        assert_eq!(poll_once(call.as_mut(), waker), Poll::Ready(Some(7)));
        assert!(deadlines.lock().slots.iter().all(Option::is_none));
    }

    #[test]
    fn a_pending_call_is_woken_and_refused_once_it_runs_out() {
        let deadlines = CallDeadlines::new(Duration::from_secs(60));
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        {
            let mut call = pin!(deadlines.run(std::future::pending::<()>()));
            assert_eq!(poll_once(call.as_mut(), &waker), Poll::Pending);
            let started = deadlines.lock().slots[0].as_ref().map(|c| c.started);
            let started = started.expect("the pending call is listed");

            // Not yet out of time: neither woken nor refused.
            deadlines.expire(started + Duration::from_secs(59));
            assert_eq!(counter.0.load(Ordering::SeqCst), 0);
            assert_eq!(poll_once(call.as_mut(), &waker), Poll::Pending);

            deadlines.expire(started + Duration::from_secs(60));
            assert_eq!(counter.0.load(Ordering::SeqCst), 1);
            assert_eq!(poll_once(call.as_mut(), &waker), Poll::Ready(None));

            // Woken once only, however often the watch looks again.
            deadlines.expire(started + Duration::from_secs(61));
            assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        }
        let calls = deadlines.lock();
        assert!(calls.slots.iter().all(Option::is_none));
        assert_eq!(calls.free, vec![0]);
    }

    #[test]
    fn freed_slots_are_reused_and_each_call_keeps_its_own_start() {
        let deadlines = CallDeadlines::new(Duration::from_secs(60));
        let waker = Waker::noop();
        let mut first = Box::pin(deadlines.run(std::future::pending::<()>()));
        assert_eq!(poll_once(first.as_mut(), waker), Poll::Pending);
        drop(first);
        let mut second = pin!(deadlines.run(std::future::pending::<()>()));
        let mut third = pin!(deadlines.run(std::future::pending::<()>()));
        assert_eq!(poll_once(second.as_mut(), waker), Poll::Pending);
        assert_eq!(poll_once(third.as_mut(), waker), Poll::Pending);
        assert_eq!(
            deadlines.lock().slots.len(),
            2,
            "the first call's slot was reused"
        );
    }

    #[test]
    fn with_no_time_at_all_a_call_that_waits_runs_out_at_once() {
        let deadlines = CallDeadlines::new(Duration::ZERO);
        let waker = Waker::noop();
        let mut waits = pin!(deadlines.run(std::future::pending::<()>()));
        assert_eq!(poll_once(waits.as_mut(), waker), Poll::Ready(None));
        let mut ready = pin!(deadlines.run(async { 1 }));
        assert_eq!(poll_once(ready.as_mut(), waker), Poll::Ready(Some(1)));
    }
}
