//! `vms-archive-fill`: fills a stopped recorder's archive for benchmarks, in seconds rather
//! than in the hours the footage spans.
//!
//! - It reads back the newest footage the recorder stored of a camera (the frames of its
//!   segment files, as scanned from the files) and loops those pre-encoded frames, with
//!   continuous timestamps, through the recorder's own writer (`Recording`), on clocks that
//!   jump with the media time: segment files, fragments, trailers and index rows are exactly
//!   what the recorder writes live, and `reindex --verify` holds.
//! - Optionally it then repeats the written stretch `--link-copies` times, back to back after
//!   it, without writing media: each copy of a segment is a hard link to the written file at
//!   the path its new start gives, and its index row is generated from a scan of that file
//!   with the start, run and position moved. Those rows point at real files, but the files'
//!   headers name the original times, so `reindex --verify` does not hold for them.
//!
//! Prints one JSON line with what it wrote.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use clap::Parser;
use vms_core::gap::EndReason;
use vms_core::id::{CameraId, RecorderId, RunId, StorageRootId};
use vms_core::time::{Duration90k, Time90k, TimeQuality};
use vms_recorder::archive::fs::RealFs;
use vms_recorder::archive::index::{Index, SegmentRow};
use vms_recorder::archive::segment::{FrameTable, Summary, scan};
use vms_recorder::archive::{layout, mp4};
use vms_recorder::clock::Clocks;
use vms_recorder::config::Config;
use vms_recorder::ingest::VideoParams;
use vms_recorder::recording::{Progress, Recording, Target};

/// Fills a stopped recorder's archive with looped copies of footage it recorded.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The recorder's configuration; it must have run once (its id and root identity exist)
    /// and must be stopped now.
    #[arg(long)]
    config: PathBuf,
    /// The camera whose newest footage is looped, and which the footage is written for.
    #[arg(long)]
    camera: CameraId,
    #[arg(long, default_value = "main")]
    stream: String,
    /// Wall-clock time (RFC 3339) of the first frame written.
    #[arg(long)]
    start: String,
    /// Seconds of media to write through the writer.
    #[arg(long, default_value_t = 3600)]
    secs: i64,
    /// How many hard-linked copies of the written stretch follow it.
    #[arg(long, default_value_t = 0)]
    link_copies: i64,
    /// Seconds of the newest recorded footage to loop.
    #[arg(long, default_value_t = 120)]
    source_secs: i64,
}

/// Clocks that read whatever media time the fill has reached: wall and monotonic time advance
/// together with the frames, so the writer sees a camera exactly on time and no clock step.
struct MediaClocks {
    base: Instant,
    wall0: Time90k,
    media_90k: AtomicI64,
}

impl MediaClocks {
    fn set(&self, media_90k: i64) {
        self.media_90k.store(media_90k, Ordering::Relaxed);
    }

    fn media(&self) -> i64 {
        self.media_90k.load(Ordering::Relaxed)
    }
}

impl Clocks for MediaClocks {
    fn realtime(&self) -> Time90k {
        self.wall0 + Duration90k(self.media())
    }

    fn monotonic(&self) -> Instant {
        let nanos = i128::from(self.media()) * 100_000 / 9;
        self.base + std::time::Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
    }

    fn quality(&self) -> TimeQuality {
        TimeQuality {
            recorder_synced: true,
            recorder_error_ms: Some(1),
            camera_offset_ms: None,
        }
    }
}

/// One recorded frame, to be fed again.
struct Frame {
    data: Vec<u8>,
    duration_90k: u32,
    sync: bool,
}

/// The newest recorded footage of a stream outside `avoid`: at least `want` of it where
/// there is that much, all with the newest segment's codec parameters; oldest frame first.
fn recorded_frames(
    index: &Index,
    root_path: &Path,
    camera: CameraId,
    stream: &str,
    avoid: std::ops::Range<Time90k>,
    want: Duration90k,
) -> anyhow::Result<(VideoParams, Vec<Frame>)> {
    let rows = index.list(camera, stream, Time90k::MIN..Time90k::MAX)?;
    let mut chosen: Vec<(SegmentRow, Vec<Frame>)> = Vec::new();
    let mut params: Option<VideoParams> = None;
    let mut have = Duration90k(0);
    for row in rows
        .into_iter()
        .rev()
        .filter(|r| r.end() <= avoid.start || r.start >= avoid.end)
    {
        let path = layout::segment_path(root_path, camera, stream, row.start)?;
        let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let summary = scan(&mut data.as_slice())?
            .summary
            .with_context(|| format!("{} holds no footage", path.display()))?;
        let table = FrameTable::decode(&summary.frame_table).context("bad frame table")?;
        let init_len = table
            .first()
            .and_then(|f| f.fragment_start)
            .context("no first fragment")?;
        let entry = mp4::sample_entries(&data[..init_len as usize])?
            .into_iter()
            .find(|t| t.track_id == mp4::VIDEO_TRACK_ID)
            .map(|t| t.sample_entry)
            .context("no video track")?;
        match &params {
            Some(p) if p.sample_entry != entry => break,
            Some(_) => {}
            None => {
                params = Some(VideoParams {
                    sample_entry: entry,
                    codec: summary.header.video_codec.clone(),
                    width: summary.header.width,
                    height: summary.header.height,
                });
            }
        }
        let frames = table
            .iter()
            .map(|f| Frame {
                data: data[f.offset as usize..][..f.size_bytes as usize].to_vec(),
                duration_90k: f.duration_90k,
                sync: f.sync,
            })
            .collect();
        have = have + row.duration;
        chosen.push((row, frames));
        if have >= want {
            break;
        }
    }
    let params = params.context("the camera has no recorded footage to loop")?;
    // A segment starts with a keyframe, so the loop does too.
    let frames: Vec<Frame> = chosen.into_iter().rev().flat_map(|(_, f)| f).collect();
    ensure!(
        frames.first().is_some_and(|f| f.sync),
        "footage must start with a keyframe"
    );
    Ok((params, frames))
}

/// The rows of the written stretch, and a scan of each file (for the copies' rows).
fn written(
    index: &Index,
    root_path: &Path,
    camera: CameraId,
    stream: &str,
    range: std::ops::Range<Time90k>,
) -> anyhow::Result<Vec<(PathBuf, Summary)>> {
    let mut out = Vec::new();
    for row in index.list(camera, stream, range.clone())? {
        if row.start < range.start {
            continue;
        }
        let path = layout::segment_path(root_path, camera, stream, row.start)?;
        let mut file =
            std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let summary = scan(&mut file)?
            .summary
            .with_context(|| format!("{} holds no footage", path.display()))?;
        out.push((path, summary));
    }
    Ok(out)
}

/// Adds `copies` copies of the stretch `segments` (contiguous, oldest first) right after it:
/// hard links at the new paths, rows moved in time, all copies one run of rotated segments.
fn link_copies(
    index: &Index,
    root: StorageRootId,
    root_path: &Path,
    segments: &[(PathBuf, Summary)],
    copies: i64,
) -> anyhow::Result<Time90k> {
    let (Some((_, first)), Some((_, last))) = (segments.first(), segments.last()) else {
        bail!("nothing was written to copy");
    };
    let origin = Time90k(first.header.start_90k);
    let span = last.end_90k() - origin;
    let run = RunId::generate();
    let mut end = last.end_90k();
    let total = copies * segments.len() as i64;
    let mut position = 0;
    for copy in 1..=copies {
        for (path, summary) in segments {
            let mut s = summary.clone();
            let start = Time90k(s.header.start_90k) + Duration90k(span.0 * copy);
            let link = layout::segment_path(root_path, s.header.camera, &s.header.stream, start)?;
            layout::ensure_dir(&RealFs, root_path, link.parent().expect("a day dir"))?;
            std::fs::hard_link(path, &link)
                .with_context(|| format!("linking {}", link.display()))?;
            s.header.start_90k = start.0;
            s.header.run = run;
            s.header.run_segment = u32::try_from(position)?;
            s.header.media_start_90k = (start - (origin + span)).0;
            position += 1;
            s.end_reason = if position == total {
                EndReason::RecorderStopped
            } else {
                EndReason::Rotated
            };
            index.put(root, &s)?;
            end = s.end_90k();
        }
    }
    Ok(end)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = Config::load(&args.config)?;
    layout::check_stream_name(&args.stream)?;
    let root_path = config
        .storage
        .first()
        .context("the config has no storage root")?
        .path
        .clone();
    ensure!(
        root_path.join(layout::IDENTITY_FILE).exists(),
        "{} has no identity file: run the recorder once first",
        root_path.display()
    );
    let id_file = config.data_dir.join("recorder-id");
    let recorder: RecorderId = std::fs::read_to_string(&id_file)
        .with_context(|| format!("reading {}: run the recorder once first", id_file.display()))?
        .trim()
        .parse()?;
    let root = layout::open_root(&RealFs, &root_path, recorder, None)?;
    let index = Index::open(&config.data_dir.join("index"))
        .context("opening the index: is the recorder still running?")?;

    let start = Time90k::parse_rfc3339(&args.start)?;
    let stretch = Duration90k::from_secs(args.secs);
    let filled = start..start + Duration90k(stretch.0 * (1 + args.link_copies));
    ensure!(
        index
            .list(args.camera, &args.stream, filled.clone())?
            .is_empty(),
        "the camera already has footage between {} and {}",
        filled.start,
        filled.end
    );
    let (params, frames) = recorded_frames(
        &index,
        &root_path,
        args.camera,
        &args.stream,
        filled.clone(),
        Duration90k::from_secs(args.source_secs),
    )?;
    let source_90k: i64 = frames.iter().map(|f| i64::from(f.duration_90k)).sum();
    let source_bytes: usize = frames.iter().map(|f| f.data.len()).sum();

    let began = Instant::now();
    let clocks = Arc::new(MediaClocks {
        base: Instant::now(),
        wall0: start,
        media_90k: AtomicI64::new(0),
    });
    let target = Target {
        fs: Arc::new(RealFs),
        index: index.clone(),
        root,
        root_path: root_path.clone(),
        recorder,
        camera: args.camera,
        stream: args.stream.clone(),
        segment_duration: Duration90k::from_secs(i64::from(config.segment_secs)),
        retention: Arc::default(),
    };
    let progress = Arc::new(Mutex::new(Progress::default()));
    let mut rec = Recording::new(target, clocks.clone(), progress, Time90k::MIN);
    let mut media = 0i64;
    let mut params = Some(Arc::new(params));
    'fill: loop {
        for f in &frames {
            if media >= stretch.0 {
                break 'fill;
            }
            clocks.set(media);
            rec.video(media, f.sync, f.data.clone(), params.take())
                .await?;
            media += i64::from(f.duration_90k);
        }
    }
    clocks.set(media);
    rec.end(EndReason::RecorderStopped).await?;
    let progress = rec.progress();
    let write_secs = began.elapsed().as_secs_f64();

    let mut end = start + Duration90k(media);
    let mut linked = 0;
    if args.link_copies > 0 {
        let segments = written(&index, &root_path, args.camera, &args.stream, start..end)?;
        end = link_copies(&index, root, &root_path, &segments, args.link_copies)?;
        linked = segments.len() as i64 * args.link_copies;
    }
    index.flush()?;
    let report = serde_json::json!({
        "camera": args.camera.to_string(),
        "stream": args.stream,
        "start": start.to_rfc3339(),
        "end": end.to_rfc3339(),
        "source_secs": source_90k as f64 / 90_000.0,
        "source_kbps": source_bytes as f64 * 8.0 / 1000.0 / (source_90k as f64 / 90_000.0),
        "written_frames": progress.frames_total,
        "written_bytes": progress.bytes_total,
        "written_secs": media as f64 / 90_000.0,
        "write_wall_secs": write_secs,
        "linked_segments": linked,
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{report}")?;
    out.flush()?;
    Ok(())
}
