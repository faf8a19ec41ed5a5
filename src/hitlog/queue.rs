//! The hand-off from the query path to the writer thread: one single-producer ring per query
//! thread, so handing over a hit never waits on anything.
//!
//! A shared bounded channel is not enough. In a multi-producer array channel a sender that
//! finds a slot half-released by the receiver spins until the receiver finishes; the writer runs
//! in `SCHED_IDLE` on the workers' cores and is preempted exactly there, so a query worker spun
//! for the rest of a scheduler slice (measured: 11 % of a worker's time in the channel's
//! `start_send` under a hit burst, and milliseconds of p99). A ring with one producer and one
//! consumer ([`rtrb`]) is wait-free on both sides: a push or pop is a few loads and one store,
//! whatever the other side is doing.
//!
//! Each query thread creates its ring on its first hit and hands the consuming end to the
//! writer through the control channel ([`Control::Ring`]), which also carries settings, flushes and the
//! stop. That channel is unbounded and its receiver never sleeps in it, so its senders never
//! take a lock either.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use rtrb::{Consumer, Producer, RingBuffer};

use super::record::HitEvent;

/// What travels to the writer beside the hits.
pub enum Control {
    /// A query thread's new ring.
    Ring(Consumer<HitEvent>),
    /// Write everything handed over so far, then answer.
    Flush(mpsc::Sender<()>),
    /// Record who read, exported or changed what.
    Audit(Box<super::audit::AuditEntry>),
    /// Follow a reloaded `[hitlog]`: client addresses, repeat window, retention, time zone
    /// (the file, the queue and the JSON sink stay as started).
    Settings(Box<crate::config::HitlogConfig>),
    /// Write everything and stop.
    Stop,
}

/// Why a hit was not handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This thread's ring is full: the writer is behind.
    Full,
    /// The writer has stopped.
    Closed,
}

/// Distinguishes hit logs in one process (tests run several servers), since rings are kept
/// per thread.
static NEXT_QUEUE_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's producing ends, one per hit log it has handed hits to.
    static PRODUCERS: RefCell<Vec<(u64, Producer<HitEvent>)>> = const { RefCell::new(Vec::new()) };
}

/// The query path's end: cheap to clone; [`HitQueue::push`] never blocks.
#[derive(Clone)]
pub struct HitQueue {
    id: u64,
    /// Hits one thread's ring holds.
    per_thread: usize,
    control: mpsc::Sender<Control>,
}

/// Creates a queue whose rings hold `per_thread` hits each, and the writer's end of its
/// control channel.
pub fn queue(per_thread: usize) -> (HitQueue, mpsc::Receiver<Control>) {
    let (control, received) = mpsc::channel();
    let queue = HitQueue {
        id: NEXT_QUEUE_ID.fetch_add(1, Ordering::Relaxed),
        per_thread: per_thread.max(1),
        control,
    };
    (queue, received)
}

impl HitQueue {
    /// Hands `event` to the writer through this thread's ring, creating the ring on the
    /// thread's first hit.
    pub fn push(&self, event: HitEvent) -> Result<(), Refused> {
        PRODUCERS.with_borrow_mut(|producers| {
            let index = match producers.iter().position(|(id, _)| *id == self.id) {
                Some(index) => index,
                None => {
                    // Rings of stopped hit logs are let go here, off the common path.
                    producers.retain(|(_, producer)| !producer.is_abandoned());
                    let (producer, consumer) = RingBuffer::new(self.per_thread);
                    self.control
                        .send(Control::Ring(consumer))
                        .map_err(|_| Refused::Closed)?;
                    producers.push((self.id, producer));
                    producers.len() - 1
                }
            };
            let producer = &mut producers[index].1;
            if producer.is_abandoned() {
                return Err(Refused::Closed);
            }
            producer.push(event).map_err(|_| Refused::Full)
        })
    }

    /// Sends a control message (flush, stop); false if the writer has stopped.
    pub fn control(&self, message: Control) -> bool {
        self.control.send(message).is_ok()
    }
}

/// The writer's end: every query thread's ring.
#[derive(Default)]
pub struct HitDrain {
    rings: Vec<Consumer<HitEvent>>,
}

impl HitDrain {
    /// Starts reading a new thread's ring.
    pub fn add(&mut self, ring: Consumer<HitEvent>) {
        self.rings.push(ring);
    }

    /// Takes up to `most` hits, in turn from each ring, passing each to `accept`; returns how
    /// many were taken. Rings whose thread has ended are dropped once empty.
    pub fn take(&mut self, most: usize, mut accept: impl FnMut(HitEvent)) -> usize {
        let mut taken = 0;
        for ring in &mut self.rings {
            while taken < most {
                let Ok(event) = ring.pop() else { break };
                accept(event);
                taken += 1;
            }
        }
        self.rings
            .retain(|ring| !(ring.is_abandoned() && ring.is_empty()));
        taken
    }

    /// Hits waiting in all rings.
    pub fn waiting(&self) -> usize {
        self.rings.iter().map(|ring| ring.slots()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hitlog::tests::{event, policy};
    use std::sync::Arc;

    /// Takes every control message waiting, adding rings to `drain`.
    fn adopt(control: &mpsc::Receiver<Control>, drain: &mut HitDrain) {
        while let Ok(message) = control.try_recv() {
            if let Control::Ring(ring) = message {
                drain.add(ring);
            }
        }
    }

    #[test]
    fn each_thread_gets_its_own_ring_and_every_hit_arrives() {
        let policy = policy();
        let (queue, control) = queue(1000);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let queue = queue.clone();
                let policy = Arc::clone(&policy);
                std::thread::spawn(move || {
                    for i in 0..500 {
                        queue.push(event(&policy, t * 1000 + i)).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let mut drain = HitDrain::default();
        adopt(&control, &mut drain);
        assert_eq!(drain.rings.len(), 4);
        assert_eq!(drain.waiting(), 2000);
        let mut names = Vec::new();
        assert_eq!(drain.take(usize::MAX, |e| names.push(e.qname)), 2000);
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 2000, "no hit lost or repeated");
        // The threads have ended and their rings are empty: let go.
        assert!(drain.rings.is_empty());
    }

    #[test]
    fn a_full_ring_refuses_and_a_stopped_writer_closes() {
        let policy = policy();
        let (queue, control) = queue(3);
        for i in 0..3 {
            queue.push(event(&policy, i)).unwrap();
        }
        assert_eq!(queue.push(event(&policy, 3)), Err(Refused::Full));
        let mut drain = HitDrain::default();
        adopt(&control, &mut drain);
        assert_eq!(drain.take(2, |_| {}), 2, "take stops at its bound");
        queue.push(event(&policy, 4)).unwrap();
        assert_eq!(drain.take(usize::MAX, |_| {}), 2);
        drop(drain);
        drop(control);
        assert_eq!(queue.push(event(&policy, 5)), Err(Refused::Closed));
        // A new hit log on this thread gets a fresh ring; the stopped one's is let go.
        let (second, control) = super::queue(3);
        second.push(event(&policy, 6)).unwrap();
        PRODUCERS.with_borrow(|p| assert_eq!(p.len(), 1));
        drop(control);
    }
}
