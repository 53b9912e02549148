//! Each rule's edges, on observations built by hand: a conforming stream, then one fault at a
//! time, which must fail exactly its own rule.

use super::*;
use crate::cameras::CameraClass;
use crate::conformance::profile::{Role, requirements};

const SPS: [u8; 4] = [0x67, 0x64, 0x00, 0x28];
const PPS: [u8; 2] = [0x68, 0xee];

/// 10 s of 1080p25 H.264 High at 4 Mbit/s with a keyframe every 2 s, everything in order.
fn conforming() -> Observations {
    let frames = (0..250)
        .map(|i: u64| Frame {
            timestamp: i as i64 * 3600,
            arrival: Duration::from_millis(i * 40),
            bytes: 20_000,
            keyframe: i.is_multiple_of(50),
            has_vps: false,
            has_sps: i.is_multiple_of(50),
            has_pps: i.is_multiple_of(50),
        })
        .collect();
    Observations {
        connect: Ok(()),
        options: Ok([
            "OPTIONS",
            "DESCRIBE",
            "SETUP",
            "PLAY",
            "TEARDOWN",
            "GET_PARAMETER",
        ]
        .map(String::from)
        .to_vec()),
        auth: AuthOutcome::Challenged {
            digest: true,
            basic: false,
            wrong_password: Ok(401),
            right_password: Ok(200),
        },
        video: Ok(VideoInfo {
            encoding: "H264".into(),
            clock_rate: 90_000,
            codec: Some(Codec::H264),
            framerate: None,
            parameter_sets: vec![SPS.to_vec(), PPS.to_vec()],
            bad_parameter_sets: 0,
        }),
        setup: Ok(SetupInfo {
            timeout_secs: Some(60),
            ssrc: Some(7),
        }),
        play: Ok(()),
        frames,
        stats: PacketStats {
            packets: 2500,
            ssrcs: vec![7],
            ..Default::default()
        },
        foreign_channel_frames: 0,
        in_band_parameter_sets: vec![SPS.to_vec(), PPS.to_vec()],
        sps: Some(Ok(SpsInfo {
            profile_idc: 100,
            compatibility: 0,
            chroma_format_idc: 1,
            bit_depth_luma: 8,
            bit_depth_chroma: 8,
            width: 1920,
            height: 1080,
            fps: Some(25.0),
        })),
        vps_fps: None,
        sender_reports: vec![
            (Duration::from_millis(1200), 3),
            (Duration::from_millis(6100), 4),
        ],
        checker_clock_synced: true,
        keepalives: vec![(Duration::from_secs(5), "GET_PARAMETER", Ok(200))],
        ended_early: None,
        duration: Duration::from_secs(10),
        teardown: Some(Ok(200)),
        reconnect: Some(Ok(Duration::from_millis(80))),
    }
}

/// The ids of the rules that fail, and of those not checked.
fn judge(
    o: &Observations,
    class: CameraClass,
    role: Role,
) -> (Vec<&'static str>, Vec<&'static str>) {
    let m = measure(o);
    let verdicts = evaluate(o, &requirements(class, role), &m);
    assert_eq!(
        verdicts.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        RULES.to_vec(),
        "every rule, in order"
    );
    let with = |name| {
        verdicts
            .iter()
            .filter(|(_, s)| s.name() == name)
            .map(|(id, _)| *id)
            .collect()
    };
    (with("fail"), with("not_checked"))
}

fn failing(o: &Observations) -> Vec<&'static str> {
    let (failed, not_checked) = judge(o, CameraClass::City, Role::Main);
    assert!(not_checked.is_empty(), "not checked: {not_checked:?}");
    failed
}

#[test]
fn a_conforming_stream_passes_every_rule() {
    let o = conforming();
    assert_eq!(failing(&o), Vec::<&str>::new());
    let m = measure(&o);
    assert_eq!(m.measured_fps, Some(25.0));
    assert_eq!(m.longest_keyframe_interval_ms, Some(2000));
    assert_eq!(m.bitrate_kbps, Some(4000));
    assert_eq!(m.clock_offset_ms, Some(4));
}

#[test]
fn each_fault_fails_exactly_its_rule() {
    type Fault = fn(&mut Observations);
    let faults: Vec<(&str, Fault)> = vec![
        ("rtsp", |o| {
            o.options = Ok(vec!["DESCRIBE".into(), "SETUP".into(), "PLAY".into()])
        }),
        ("rtsp", |o| {
            o.options = Err("answered 501 Not Implemented".into())
        }),
        ("auth", |o| o.auth = AuthOutcome::NotRequired),
        ("auth", |o| {
            o.auth = AuthOutcome::Challenged {
                digest: true,
                basic: false,
                wrong_password: Ok(200),
                right_password: Ok(200),
            }
        }),
        ("auth", |o| {
            o.auth = AuthOutcome::Challenged {
                digest: false,
                basic: true,
                wrong_password: Ok(401),
                right_password: Ok(200),
            }
        }),
        ("codec", |o| {
            if let Some(Ok(s)) = &mut o.sps {
                s.profile_idc = 66;
            }
        }),
        ("codec", |o| {
            if let Some(Ok(s)) = &mut o.sps {
                s.bit_depth_luma = 10;
            }
        }),
        ("codec", |o| {
            if let Some(Ok(s)) = &mut o.sps {
                s.chroma_format_idc = 2;
            }
        }),
        ("resolution", |o| {
            if let Some(Ok(s)) = &mut o.sps {
                (s.width, s.height) = (1280, 720);
            }
        }),
        ("resolution", |o| {
            if let Some(Ok(s)) = &mut o.sps {
                (s.width, s.height) = (1080, 1920);
            }
        }),
        // Declared 30 but sent at 25: more than 10 % off.
        ("frame_rate", |o| {
            if let Some(Ok(s)) = &mut o.sps {
                s.fps = Some(30.0);
            }
        }),
        // A 1.5 s stall: media time and arrival move on together.
        ("frame_rate", |o| {
            for f in &mut o.frames[100..] {
                f.arrival += Duration::from_millis(1500);
                f.timestamp += 1500 * 90;
            }
        }),
        ("keyframes", |o| {
            for (i, f) in o.frames.iter_mut().enumerate() {
                f.keyframe = i % 100 == 0;
                f.has_sps = f.keyframe;
                f.has_pps = f.keyframe;
            }
        }),
        ("keyframes", |o| {
            // The first keyframe 2.1 s after PLAY.
            o.frames.drain(..45);
            for f in &mut o.frames {
                f.arrival =
                    f.arrival - Duration::from_millis(45 * 40) + Duration::from_millis(1900);
            }
        }),
        ("parameter_sets", |o| {
            o.video.as_mut().unwrap().parameter_sets.clear();
            o.frames[100].has_sps = false;
        }),
        ("parameter_sets", |o| {
            o.in_band_parameter_sets[0] = vec![0x67, 0x4d, 0, 0x28]
        }),
        ("bitrate", |o| {
            o.frames.iter_mut().for_each(|f| f.bytes = 1_000)
        }),
        ("bitrate", |o| {
            o.frames.iter_mut().for_each(|f| f.bytes = 50_000)
        }),
        ("rtp", |o| o.stats.lost = 3),
        ("rtp", |o| o.stats.ssrcs.push(9)),
        ("rtp", |o| o.stats.ssrcs = vec![8]),
        ("rtp", |o| o.stats.unmarked_frames = 1),
        ("rtp", |o| o.stats.backwards = 1),
        ("rtp", |o| o.stats.excess_frames = 1),
        // A 5 s timestamp jump: media time leaps, arrival does not.
        ("rtp", |o| {
            o.frames[120..]
                .iter_mut()
                .for_each(|f| f.timestamp += 5000 * 90)
        }),
        ("clock", |o| o.sender_reports.clear()),
        ("clock", |o| o.sender_reports[0].1 = 1500),
        ("clock", |o| {
            o.sender_reports = vec![(Duration::from_millis(5500), 0)]
        }),
        ("clock", |o| {
            o.duration = Duration::from_secs(30);
            o.sender_reports.truncate(1);
        }),
        ("session", |o| o.keepalives[0].2 = Ok(454)),
        ("session", |o| {
            o.ended_early = Some((Duration::from_secs(4), "closed".into()))
        }),
        ("session", |o| {
            o.teardown = Some(Err("no answer within 5 s".into()))
        }),
        ("session", |o| {
            o.reconnect = Some(Err("DESCRIBE answered 453".into()))
        }),
        ("session", |o| {
            o.reconnect = Some(Ok(Duration::from_millis(2500)))
        }),
    ];
    for (i, (rule, fault)) in faults.iter().enumerate() {
        let mut o = conforming();
        fault(&mut o);
        assert_eq!(
            failing(&o),
            vec![*rule],
            "fault {i} should fail only {rule}"
        );
    }
}

#[test]
fn thresholds_are_inclusive_at_the_edge() {
    // Exactly the minimum frame rate of a Safe Yard main stream, 15 fps, 2 s GOP (30 frames).
    let mut o = conforming();
    for (i, f) in o.frames.iter_mut().enumerate() {
        f.timestamp = i as i64 * 6000;
        f.arrival = Duration::from_micros(i as u64 * 66_667);
        f.keyframe = i % 30 == 0;
        f.has_sps = f.keyframe;
        f.has_pps = f.keyframe;
    }
    if let Some(Ok(s)) = &mut o.sps {
        s.fps = Some(15.0);
    }
    let (failed, _) = judge(&o, CameraClass::SafeYard, Role::Main);
    assert_eq!(failed, Vec::<&str>::new());
    // The same stream is too slow for a city camera.
    let (failed, _) = judge(&o, CameraClass::City, Role::Main);
    assert_eq!(failed, vec!["frame_rate"]);
    // A 2 s GOP is too long for traffic.
    let (failed, _) = judge(&o, CameraClass::Traffic, Role::Main);
    assert_eq!(failed, vec!["frame_rate", "keyframes"]);
}

#[test]
fn what_could_not_be_seen_is_not_checked() {
    let mut o = conforming();
    o.auth = AuthOutcome::NoCredentials;
    let (failed, not_checked) = judge(&o, CameraClass::City, Role::Main);
    assert_eq!(failed, vec!["auth"]);
    assert_eq!(not_checked.len(), 10);

    let mut o = conforming();
    o.setup = Err("answered 461 Unsupported Transport".into());
    o.frames.clear();
    let (failed, not_checked) = judge(&o, CameraClass::City, Role::Main);
    assert_eq!(failed, vec!["rtsp"]);
    assert_eq!(not_checked, RULES[2..].to_vec());

    let mut o = conforming();
    o.connect = Err("connection refused".into());
    let (failed, not_checked) = judge(&o, CameraClass::City, Role::Main);
    assert_eq!(failed, vec!["rtsp"]);
    assert_eq!(not_checked.len(), 10);

    // Neither the SDP nor the stream carries parameter sets: only that rule fails, and the
    // rules that need an SPS are not checked.
    let mut o = conforming();
    o.video.as_mut().unwrap().parameter_sets.clear();
    o.in_band_parameter_sets.clear();
    o.sps = None;
    for f in &mut o.frames {
        (f.has_sps, f.has_pps) = (false, false);
    }
    let (failed, not_checked) = judge(&o, CameraClass::City, Role::Main);
    assert_eq!(failed, vec!["parameter_sets"]);
    assert_eq!(not_checked, vec!["codec", "resolution"]);
}

#[test]
fn a_sub_stream_is_judged_by_the_sub_stream_profile() {
    let mut o = conforming();
    if let Some(Ok(s)) = &mut o.sps {
        (s.width, s.height) = (640, 360);
    }
    o.frames.iter_mut().for_each(|f| f.bytes = 2_500); // 500 kbit/s
    let (failed, _) = judge(&o, CameraClass::City, Role::Sub);
    assert_eq!(failed, Vec::<&str>::new());
    let (failed, _) = judge(&o, CameraClass::City, Role::Main);
    assert_eq!(failed, vec!["resolution", "bitrate"]);
}
