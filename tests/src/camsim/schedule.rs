//! The pacing thread of `loop` mode: one thread wakes when the next frame of any looping track
//! is due and pushes it, so hundreds of cameras cost one timer, not one thread each.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::encode::Clip;
use super::stream::{Pacer, Stream};

/// How long a track waits before it looks again for its media's running time.
const NOT_RUNNING_RETRY: Duration = Duration::from_millis(5);

/// One looping track (video or audio) of one media.
pub struct Track {
    stream: Arc<Stream>,
    generation: u64,
    audio: bool,
    pacer: Pacer,
    clip: Option<Arc<Clip>>,
    clip_version: u64,
    pos: usize,
}

impl Track {
    /// Sends the frame that is due; returns when the next one is, or `None` once the media is gone.
    fn tick(&mut self, now: Instant) -> Option<Instant> {
        if self.stream.generation() != self.generation {
            return None;
        }
        if !self.pacer.ready() {
            return Some(now + NOT_RUNNING_RETRY);
        }
        if self.pos == 0 && !self.audio {
            tracing::debug!(stream = %self.stream.path, generation = self.generation, "clip starts");
        }
        if !self.audio && self.stream.clip_version() != self.clip_version {
            // A resolution change: the new clip starts with its keyframe and new SPS.
            (self.clip, self.clip_version) = self.stream.clip();
            self.pos = 0;
        }
        let clip = self.clip.as_ref()?;
        let units = if self.audio { &clip.audio } else { &clip.video };
        let au = units.get(self.pos)?;
        let silent = self.stream.stalled(now);
        // A refusal (the media flushing while a client starts) loses this frame only; the
        // track ends when its media does, through the generation check above.
        if let Err(e) = self.pacer.push(au, silent) {
            tracing::debug!(stream = %self.stream.path, err = ?e, "frame refused");
        }
        self.pos = (self.pos + 1) % units.len();
        Some(self.pacer.due())
    }
}

struct Due {
    at: Instant,
    track: Track,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    /// Reversed, so that the max-heap yields the earliest deadline.
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at)
    }
}

/// Handle to the pacing thread; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct Scheduler {
    tx: mpsc::Sender<Track>,
}

impl Scheduler {
    pub fn start() -> Scheduler {
        let (tx, rx) = mpsc::channel::<Track>();
        thread::Builder::new()
            .name("camsim-pacer".into())
            .spawn(move || run(rx))
            .expect("spawn pacing thread");
        Scheduler { tx }
    }

    /// Starts replaying a stream's clip into a media, from the clip's first (key)frame.
    pub fn add(&self, stream: Arc<Stream>, generation: u64, pacer: Pacer, audio: bool) {
        let (clip, clip_version) = stream.clip();
        let _ = self.tx.send(Track {
            stream,
            generation,
            audio,
            pacer,
            clip,
            clip_version,
            pos: 0,
        });
    }
}

fn run(rx: mpsc::Receiver<Track>) {
    let mut heap = BinaryHeap::<Due>::new();
    loop {
        let now = Instant::now();
        let next = match heap.peek() {
            Some(d) => rx.recv_timeout(d.at.saturating_duration_since(now)),
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(track) => heap.push(Due {
                at: Instant::now(),
                track,
            }),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        while heap.peek().is_some_and(|d| d.at <= now) {
            let mut due = heap.pop().expect("peeked");
            if let Some(at) = due.track.tick(now) {
                due.at = at;
                heap.push(due);
            }
        }
    }
}
