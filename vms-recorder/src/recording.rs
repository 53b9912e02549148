//! Turning one stream's frames into segments: runs, fragments of at most 1 s cut at keyframes
//! where the GOP allows, rotation, codec changes, clock steps, and the write order that keeps
//! the index behind the disk (fragment fdatasync'd, then trailer, then index row).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use vms_core::gap::EndReason;
use vms_core::id::{CameraId, RecorderId, RunId, StorageRootId};
use vms_core::time::{Duration90k, TIME_UNITS_PER_SEC, Time90k};
use vms_core::{Error, err};

use crate::archive::fs::ArchiveFs;
use crate::archive::index::{Index, SegmentRow};
use crate::archive::layout;
use crate::archive::mp4::{self, Sample, TrackRun, TrackSpec};
use crate::archive::segment::{SEGMENT_FORMAT_VERSION, SegmentHeader, SegmentWriter};
use crate::clock::Clocks;
use crate::ingest::{AudioParams, VideoParams};

/// The longest a fragment may last.
const MAX_FRAGMENT_90K: i64 = TIME_UNITS_PER_SEC;

/// How far a camera's timestamps may run ahead of the recorder's monotonic clock, or lag
/// behind it, before the run is broken as a clock step.
const MAX_AHEAD_90K: i64 = TIME_UNITS_PER_SEC;
const MAX_BEHIND_90K: i64 = 5 * TIME_UNITS_PER_SEC;

/// How far the recorder's wall clock may move against its monotonic clock before it counts as
/// a step.
const MAX_WALL_STEP_90K: i64 = TIME_UNITS_PER_SEC;

/// Where and as what a stream records.
#[derive(Clone)]
pub struct Target {
    pub fs: Arc<dyn ArchiveFs>,
    pub index: Index,
    pub root: StorageRootId,
    pub root_path: PathBuf,
    pub recorder: RecorderId,
    pub camera: CameraId,
    pub stream: String,
    pub segment_duration: Duration90k,
    /// Woken whenever a segment closes or a write fails: retention then checks for room.
    pub retention: Arc<tokio::sync::Notify>,
}

/// What a recording shows of itself while it runs (for status, metrics and serving).
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// Frames made durable since the recorder started.
    pub frames_total: u64,
    pub bytes_total: u64,
    /// Frames dropped while waiting for a keyframe to start a segment.
    pub frames_skipped: u64,
    /// When the last frame arrived.
    pub last_frame: Option<Instant>,
    /// The open segment: its start, run and durable frames.
    pub open_segment: Option<(Time90k, RunId, u64)>,
    /// Media bytes written to the open segment (it counts against the quota before it has a
    /// row).
    pub open_bytes: u64,
    /// Wall time up to which footage is durable in the open segment.
    pub durable_until: Option<Time90k>,
    /// Wall time and reason of the end of the last segment, while no segment is open.
    pub gap_since: Option<(Time90k, EndReason)>,
    /// Seconds between a fragment's last frame arriving and its fdatasync completing.
    pub last_write_lag_secs: f64,
    pub camera_offset_ms: Option<i64>,
    /// The durable part of the open segment as a row and its frame table, so that readers can
    /// serve it before it is closed and indexed.
    pub open_view: Option<Arc<(SegmentRow, Vec<u8>)>>,
}

struct Run {
    id: RunId,
    media0: i64,
    wall0: Time90k,
    mono0: Instant,
    wall_at_mono0: Time90k,
    next_segment: u32,
    audio0: Option<i64>,
    last_ts: i64,
}

struct Frame {
    ts: i64,
    keyframe: bool,
    data: Vec<u8>,
}

struct AudioFrame {
    ts: i64,
    duration: u32,
    data: Vec<u8>,
}

struct Open {
    writer: SegmentWriter,
    params: Arc<VideoParams>,
    start_ts: i64,
}

/// Records one stream: feed it frames, end it with a reason.
pub struct Recording {
    target: Target,
    clocks: Arc<dyn Clocks>,
    progress: Arc<Mutex<Progress>>,
    audio: Option<AudioParams>,
    /// The stream's current video parameters: they arrive once per change, and a run or
    /// segment may start long after (after a clock step, or at the first keyframe).
    params: Option<Arc<VideoParams>>,
    run: Option<Run>,
    open: Option<Open>,
    pending: Vec<Frame>,
    pending_audio: Vec<AudioFrame>,
    last_duration: u32,
    /// End of the last segment written: a new run never starts before it.
    last_end: Time90k,
}

fn lock(p: &Mutex<Progress>) -> std::sync::MutexGuard<'_, Progress> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

impl Recording {
    pub fn new(
        target: Target,
        clocks: Arc<dyn Clocks>,
        progress: Arc<Mutex<Progress>>,
        last_end: Time90k,
    ) -> Recording {
        Recording {
            target,
            clocks,
            progress,
            audio: None,
            params: None,
            run: None,
            open: None,
            pending: Vec::new(),
            pending_audio: Vec::new(),
            last_duration: 3000,
            last_end,
        }
    }

    /// Starts a session's recording: its audio track, if any, goes into every segment.
    pub fn set_audio(&mut self, audio: Option<AudioParams>) {
        self.audio = audio;
    }

    /// A snapshot of what this recording has done.
    pub fn progress(&self) -> Progress {
        lock(&self.progress).clone()
    }

    /// Takes one video frame. `params` is set on the first frame and whenever they change.
    pub async fn video(
        &mut self,
        ts: i64,
        keyframe: bool,
        data: Vec<u8>,
        params: Option<Arc<VideoParams>>,
    ) -> Result<(), Error> {
        let now_mono = self.clocks.monotonic();
        let now_wall = self.clocks.realtime();
        lock(&self.progress).last_frame = Some(now_mono);
        if let Some(run) = &self.run {
            // A timestamp a little behind the last one is a B-frame sent in decode order: its
            // composition offset cannot be known from RTP, so such streams are refused
            // clearly rather than broken into a run per frame.
            if ts < run.last_ts && run.last_ts - ts < MAX_AHEAD_90K {
                return Err(err!(
                    InvalidArgument,
                    "the stream has B-frames (timestamps out of order), which recording does \
                     not support: configure the camera without them"
                ));
            }
            let media = ts - run.media0;
            let mono = Duration90k::from_std(now_mono - run.mono0).0;
            let wall = (now_wall - run.wall_at_mono0).0;
            let camera_step =
                ts <= run.last_ts || media - mono > MAX_AHEAD_90K || mono - media > MAX_BEHIND_90K;
            let recorder_step = (wall - mono).abs() > MAX_WALL_STEP_90K;
            if camera_step || recorder_step {
                tracing::warn!(
                    camera = %self.target.camera, stream = %self.target.stream,
                    media_secs = media as f64 / 90_000.0, mono_secs = mono as f64 / 90_000.0,
                    recorder_step, "clock step: starting a new run"
                );
                self.end(EndReason::ClockStep).await?;
            }
        }
        if let Some(p) = params {
            if let Some(open) = &self.open
                && open.params.sample_entry != p.sample_entry
            {
                tracing::info!(camera = %self.target.camera, stream = %self.target.stream, codec = %p.codec,
                    width = p.width, height = p.height, "codec parameters changed: new segment");
                self.close_segment(EndReason::CodecChange, Some(ts)).await?;
            }
            self.params = Some(p);
        }
        if self.run.is_none() {
            if !keyframe {
                lock(&self.progress).frames_skipped += 1;
                return Ok(());
            }
            let wall0 = now_wall.max(self.last_end);
            self.run = Some(Run {
                id: RunId::generate(),
                media0: ts,
                wall0,
                mono0: now_mono,
                wall_at_mono0: now_wall,
                next_segment: 0,
                audio0: None,
                last_ts: ts,
            });
        }
        let Some(params) = self.params.clone() else {
            return Err(err!(Internal, "video frame before any codec parameters"));
        };
        if let Some(open) = &self.open
            && keyframe
            && ts - open.start_ts >= self.target.segment_duration.0
        {
            self.close_segment(EndReason::Rotated, Some(ts)).await?;
        }
        if self.open.is_none() {
            if !keyframe {
                lock(&self.progress).frames_skipped += 1;
                return Ok(());
            }
            self.open_segment(ts, params).await?;
        }
        if let Some(first) = self.pending.first()
            && (keyframe || ts - first.ts >= MAX_FRAGMENT_90K)
        {
            self.flush(Some(ts)).await?;
        }
        if let Some(run) = &mut self.run {
            run.last_ts = ts;
        }
        self.pending.push(Frame { ts, keyframe, data });
        Ok(())
    }

    /// Takes one audio frame; it joins the next fragment written.
    pub fn audio_frame(&mut self, ts: i64, duration: u32, data: Vec<u8>) {
        let (Some(run), Some(_)) = (&mut self.run, &self.open) else {
            return;
        };
        if self.audio.is_none() {
            return;
        }
        let audio0 = *run.audio0.get_or_insert(ts);
        if ts < audio0 {
            return;
        }
        self.pending_audio.push(AudioFrame { ts, duration, data });
    }

    /// Notes the camera's clock from an RTCP sender report.
    pub fn camera_clock(&mut self, camera_unix_us: i64) {
        let local_us = (self.clocks.realtime().unix_nanos() / 1000) as i64;
        lock(&self.progress).camera_offset_ms = Some((camera_unix_us - local_us) / 1000);
    }

    /// Ends the run: what is pending becomes durable, the segment gets its trailer and row.
    pub async fn end(&mut self, reason: EndReason) -> Result<(), Error> {
        let result = self.close_segment(reason, None).await;
        self.run = None;
        self.pending.clear();
        self.pending_audio.clear();
        result
    }

    async fn open_segment(&mut self, ts: i64, params: Arc<VideoParams>) -> Result<(), Error> {
        let run = self.run.as_mut().expect("a run is open");
        let start = run.wall0 + Duration90k(ts - run.media0);
        let quality = self.clocks.quality();
        // A run that had to start after the last segment's end (the clock went back) carries
        // times ahead of the clock: they are not synchronised time, whatever NTP says.
        let clamped = start - self.clocks.realtime() > Duration90k::from_secs(1);
        let header = SegmentHeader {
            format: SEGMENT_FORMAT_VERSION,
            recorder: self.target.recorder,
            camera: self.target.camera,
            stream: self.target.stream.clone(),
            run: run.id,
            run_segment: run.next_segment,
            start_90k: start.0,
            media_start_90k: ts - run.media0,
            video_codec: params.codec.clone(),
            width: params.width,
            height: params.height,
            audio_codec: self.audio.as_ref().map(|a| a.codec.clone()),
            audio_sample_rate: self.audio.as_ref().map(|a| a.sample_rate),
            recorder_synced: quality.recorder_synced && !clamped,
            recorder_error_ms: quality.recorder_error_ms,
        };
        run.next_segment += 1;
        let run_id = run.id;
        let t = self.target.clone();
        let audio = self.audio.clone();
        let p = params.clone();
        let writer = tokio::task::spawn_blocking(move || {
            // The disk may have gone since start-up: never write into an empty mount point.
            if !t.fs.exists(&t.root_path.join(layout::IDENTITY_FILE)) {
                return Err(err!(
                    FailedPrecondition,
                    "storage root {} lost its identity file (unmounted?)",
                    t.root_path.display()
                ));
            }
            let path = layout::segment_path(&t.root_path, t.camera, &t.stream, start)?;
            layout::ensure_dir(
                t.fs.as_ref(),
                &t.root_path,
                path.parent().expect("has a day dir"),
            )?;
            let mut tracks = vec![TrackSpec {
                track_id: mp4::VIDEO_TRACK_ID,
                timescale: 90_000,
                sample_entry: &p.sample_entry,
                video_size: Some((p.width, p.height)),
            }];
            if let Some(a) = &audio {
                tracks.push(TrackSpec {
                    track_id: mp4::AUDIO_TRACK_ID,
                    timescale: a.sample_rate,
                    sample_entry: &a.sample_entry,
                    video_size: None,
                });
            }
            SegmentWriter::create(t.fs.clone(), &path, header, &tracks)
        })
        .await
        .map_err(|e| err!(Internal, "segment task: {e}"))??;
        tracing::debug!(path = %writer.path().display(), "segment opened");
        self.open = Some(Open {
            writer,
            params,
            start_ts: ts,
        });
        let mut p = lock(&self.progress);
        p.gap_since = None;
        p.open_segment = Some((start, run_id, 0));
        p.open_bytes = 0;
        p.durable_until = Some(start);
        Ok(())
    }

    /// Writes the pending frames as one fragment. `next_ts` is the timestamp of the frame
    /// after them, which gives the last one its duration.
    async fn flush(&mut self, next_ts: Option<i64>) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let run = self.run.as_ref().expect("a run is open");
        let frames = std::mem::take(&mut self.pending);
        let mut samples = Vec::with_capacity(frames.len());
        for (i, f) in frames.iter().enumerate() {
            let next = frames.get(i + 1).map(|n| n.ts).or(next_ts);
            let duration = match next {
                Some(n) => u32::try_from(n - f.ts).unwrap_or(self.last_duration),
                None => self.last_duration,
            };
            self.last_duration = duration;
            samples.push(Sample {
                duration,
                size: f.data.len() as u32,
                sync: f.keyframe,
            });
        }
        let mut runs = vec![TrackRun {
            track_id: mp4::VIDEO_TRACK_ID,
            base_decode_time: (frames[0].ts - run.media0) as u64,
            samples,
        }];
        let audio = std::mem::take(&mut self.pending_audio);
        if let (Some(first), Some(audio0)) = (audio.first(), run.audio0) {
            runs.push(TrackRun {
                track_id: mp4::AUDIO_TRACK_ID,
                base_decode_time: (first.ts - audio0) as u64,
                samples: audio
                    .iter()
                    .map(|a| Sample {
                        duration: a.duration,
                        size: a.data.len() as u32,
                        sync: true,
                    })
                    .collect(),
            });
        }
        let wall = run.wall0 + Duration90k(frames[0].ts - run.media0);
        let end_wall =
            wall + Duration90k(runs[0].samples.iter().map(|s| i64::from(s.duration)).sum());
        let bytes: u64 = runs.iter().map(TrackRun::data_len).sum();
        let frame_count = runs[0].samples.len() as u64;
        let mut open = self
            .open
            .take()
            .ok_or_else(|| err!(Internal, "flush without a segment"))?;
        let arrived = self.clocks.monotonic();
        let result = tokio::task::spawn_blocking(move || {
            let data: Vec<&[u8]> = frames
                .iter()
                .map(|f| f.data.as_slice())
                .chain(audio.iter().map(|a| a.data.as_slice()))
                .collect();
            let r = open
                .writer
                .write_fragment(wall.to_ntp(), &runs, &data)
                .map(|()| open.writer.provisional());
            (open, r)
        })
        .await
        .map_err(|e| err!(Internal, "write task: {e}"))?;
        let (open, r) = result;
        self.open = Some(open);
        if r.is_err() {
            self.target.retention.notify_one();
        }
        let view = r?;
        let row = SegmentRow::from_summary(self.target.root, &view);
        let mut p = lock(&self.progress);
        p.open_view = Some(Arc::new((row, view.frame_table)));
        p.frames_total += frame_count;
        if let Some((_, _, frames)) = &mut p.open_segment {
            *frames += frame_count;
        }
        p.bytes_total += bytes;
        p.open_bytes += bytes;
        p.durable_until = Some(end_wall);
        p.last_write_lag_secs = (self.clocks.monotonic() - arrived).as_secs_f64();
        Ok(())
    }

    /// Flushes and closes the open segment, then indexes it.
    async fn close_segment(
        &mut self,
        reason: EndReason,
        next_ts: Option<i64>,
    ) -> Result<(), Error> {
        let flushed = self.flush(next_ts).await;
        let Some(open) = self.open.take() else {
            return flushed;
        };
        let camera_offset_ms = lock(&self.progress).camera_offset_ms;
        // A failed flush still closes the file; recovery trims whatever was cut short.
        let reason = if flushed.is_err() {
            EndReason::DiskError
        } else {
            reason
        };
        let t = self.target.clone();
        let durable_end = {
            let p = lock(&self.progress);
            p.durable_until.unwrap_or(self.last_end)
        };
        let closed = tokio::task::spawn_blocking(move || {
            let summary = open.writer.finish(reason, camera_offset_ms)?;
            t.index.put(t.root, &summary)?;
            Ok::<_, Error>(summary)
        })
        .await
        .map_err(|e| err!(Internal, "close task: {e}"))
        .and_then(|r| r);
        // Whatever happened, the segment is no longer open. If its close failed, the file is
        // still whole up to its last durable fragment, and recovery indexes it at the next start.
        self.last_end = match &closed {
            Ok(summary) => summary.end_90k(),
            Err(_) => durable_end,
        };
        let mut p = lock(&self.progress);
        p.durable_until = None;
        p.open_segment = None;
        p.open_bytes = 0;
        p.open_view = None;
        if closed.is_err() || (reason != EndReason::Rotated && reason != EndReason::CodecChange) {
            p.gap_since = Some((
                self.last_end,
                if closed.is_err() {
                    EndReason::DiskError
                } else {
                    reason
                },
            ));
        }
        drop(p);
        self.target.retention.notify_one();
        let summary = closed?;
        tracing::debug!(camera = %self.target.camera, stream = %self.target.stream, %reason,
            frames = summary.frames, "segment closed");
        flushed
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::archive::fs::SimFs;
    use crate::archive::segment::scan;
    use std::path::Path;
    use std::time::Duration;
    use vms_core::time::TimeQuality;

    /// Clocks that move only when told to.
    pub struct FakeClocks {
        base: Instant,
        state: Mutex<(Time90k, Duration)>,
    }

    impl FakeClocks {
        pub fn new(wall: Time90k) -> Arc<FakeClocks> {
            Arc::new(FakeClocks {
                base: Instant::now(),
                state: Mutex::new((wall, Duration::ZERO)),
            })
        }
        pub fn advance(&self, d: Duration) {
            let mut s = self.state.lock().unwrap();
            s.0 = s.0 + Duration90k::from_std(d);
            s.1 += d;
        }
    }

    impl Clocks for FakeClocks {
        fn realtime(&self) -> Time90k {
            self.state.lock().unwrap().0
        }
        fn monotonic(&self) -> Instant {
            self.base + self.state.lock().unwrap().1
        }
        fn quality(&self) -> TimeQuality {
            TimeQuality {
                recorder_synced: true,
                recorder_error_ms: Some(3),
                camera_offset_ms: None,
            }
        }
    }

    pub fn params(width: u32) -> Arc<VideoParams> {
        let mut sample_entry = Vec::new();
        mp4::write_box(&mut sample_entry, b"avc1", |b| {
            b.extend_from_slice(&width.to_be_bytes())
        });
        Arc::new(VideoParams {
            sample_entry,
            codec: "avc1.640028".into(),
            width,
            height: 360,
        })
    }

    pub fn target(fs: &SimFs, index: Index) -> Target {
        fs.preexisting_dir(Path::new("/disk"));
        let recorder = RecorderId::generate();
        let root = layout::open_root(fs, Path::new("/disk"), recorder, None).unwrap();
        Target {
            fs: Arc::new(fs.clone()),
            index,
            root,
            root_path: "/disk".into(),
            recorder,
            camera: CameraId::generate(),
            stream: "main".into(),
            segment_duration: Duration90k::from_secs(4),
            retention: Arc::default(),
        }
    }

    /// Feeds `n` frames at 15 fps with a keyframe every `gop`, from timestamp `ts0`. A camera
    /// sends its parameters once: pass `p` only for the first frame of a session.
    pub async fn feed(
        r: &mut Recording,
        clocks: &FakeClocks,
        ts0: i64,
        n: i64,
        gop: i64,
        p: Option<&Arc<VideoParams>>,
    ) {
        for i in 0..n {
            let params = if i == 0 { p.cloned() } else { None };
            r.video(
                ts0 + i * 6000,
                i % gop == 0,
                vec![i as u8; 50 + (i % 7) as usize],
                params,
            )
            .await
            .unwrap();
            clocks.advance(Duration::from_nanos(66_666_667));
        }
    }

    #[tokio::test]
    async fn b_frames_are_refused_with_a_clear_error() {
        let fs = SimFs::new(6);
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        let clocks = FakeClocks::new(Time90k::parse_rfc3339("2026-11-26T10:00:00Z").unwrap());
        let progress = Arc::new(Mutex::new(Progress::default()));
        let mut r = Recording::new(target(&fs, index), clocks.clone(), progress, Time90k::MIN);
        // I P B in decode order: presentation times 0, 12000, 6000.
        r.video(0, true, vec![1; 10], Some(params(640)))
            .await
            .unwrap();
        clocks.advance(Duration::from_millis(66));
        r.video(12_000, false, vec![2; 10], None).await.unwrap();
        clocks.advance(Duration::from_millis(66));
        let e = r.video(6000, false, vec![3; 10], None).await.unwrap_err();
        assert_eq!(e.kind(), vms_core::ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("B-frames"), "{e}");
    }

    #[tokio::test]
    async fn rotates_fragments_and_runs() {
        let fs = SimFs::new(5);
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        let t = target(&fs, index.clone());
        let clocks = FakeClocks::new(Time90k::parse_rfc3339("2026-11-26T10:00:00Z").unwrap());
        let progress = Arc::new(Mutex::new(Progress::default()));
        let mut r = Recording::new(t.clone(), clocks.clone(), progress.clone(), Time90k::MIN);
        let p = params(640);
        // Starts mid-GOP: frames before the first keyframe are skipped.
        r.video(1000, false, vec![1; 10], Some(p.clone()))
            .await
            .unwrap();
        feed(&mut r, &clocks, 7000, 150, 30, None).await; // 10 s
        // A timestamp jump of 100 s forward breaks the run; the parameters do not come again.
        feed(&mut r, &clocks, 7000 + 150 * 6000 + 9_000_000, 45, 30, None).await;
        r.end(EndReason::RecorderStopped).await.unwrap();

        let rows: Vec<_> = index.all().map(Result::unwrap).collect();
        let reasons: Vec<_> = rows.iter().map(|r| r.end_reason).collect();
        use EndReason::*;
        assert_eq!(reasons, [Rotated, Rotated, ClockStep, RecorderStopped]);
        assert_eq!(rows.iter().map(|r| r.frames).sum::<u32>(), 195);
        assert_eq!(progress.lock().unwrap().frames_skipped, 1);
        // Within a run, media time and wall time are continuous from segment to segment.
        for pair in rows.windows(2) {
            if pair[0].run == pair[1].run {
                assert_eq!(
                    pair[0].media_start_90k + pair[0].duration.0,
                    pair[1].media_start_90k
                );
                assert_eq!(pair[0].end(), pair[1].start);
            } else {
                assert!(pair[1].start >= pair[0].end(), "runs never overlap");
            }
        }
        // Every file scans to its row, and no fragment lasts more than 1 s.
        for row in &rows {
            let path =
                layout::segment_path(Path::new("/disk"), row.camera, "main", row.start).unwrap();
            let scanned = scan(&mut fs.read(&path).unwrap().as_slice()).unwrap();
            let s = scanned.summary.unwrap();
            assert_eq!(SegmentRow::from_summary(t.root, &s), *row);
            let starts: Vec<u64> = s.fragments.iter().map(|f| f.0).collect();
            for w in starts.windows(2) {
                assert!(w[1] - w[0] <= 90_000, "fragment of {} ticks", w[1] - w[0]);
            }
        }
    }
}
