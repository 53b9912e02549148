//! A raw RTSP client for the simulator's tests: it shows bytes no library would let through
//! unchanged — the SDP as sent, refused SETUPs, every RTP and RTCP packet over TCP
//! (interleaved) or UDP, and the NAL units inside the RTP payloads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// How long one read may block before the caller looks at its deadline again.
const POLL: Duration = Duration::from_millis(20);

/// An RTSP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A packet of the video track as it arrived.
#[derive(Debug, Clone)]
pub struct Packet {
    pub rtcp: bool,
    pub data: Vec<u8>,
}

/// How a session's media reaches us.
pub enum Media {
    /// Not set up yet.
    None,
    /// Interleaved on the RTSP connection, on channels 0 (RTP) and 1 (RTCP).
    Tcp,
    /// On two local UDP ports.
    Udp { rtp: UdpSocket, rtcp: UdpSocket },
}

/// One RTSP connection with at most one session, for the video track only.
pub struct Client {
    conn: TcpStream,
    buf: Vec<u8>,
    cseq: u32,
    url: String,
    session: Option<String>,
    media: Media,
}

impl Client {
    pub fn connect(rtsp: SocketAddr, path: &str) -> Client {
        let conn = TcpStream::connect(rtsp).expect("connect to the simulator");
        conn.set_read_timeout(Some(POLL)).unwrap();
        Client {
            conn,
            buf: Vec::new(),
            cseq: 0,
            url: format!("rtsp://{rtsp}{path}"),
            session: None,
            media: Media::None,
        }
    }

    /// Sends a request for `url` and waits for its response; media that arrives meanwhile is
    /// dropped.
    pub fn request(&mut self, method: &str, url: &str, headers: &[(&str, &str)]) -> Response {
        self.cseq += 1;
        let mut req = format!("{method} {url} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        if let Some(s) = &self.session {
            req.push_str(&format!("Session: {s}\r\n"));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        self.conn.write_all(req.as_bytes()).expect("send request");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.take_message() {
                Some(Message::Response(r)) => return r,
                Some(Message::Interleaved(..)) => continue,
                None => {
                    assert!(Instant::now() < deadline, "no answer to {method}");
                    self.fill();
                }
            }
        }
    }

    /// DESCRIBE: the SDP.
    pub fn describe(&mut self) -> Response {
        let url = self.url.clone();
        self.request("DESCRIBE", &url, &[("Accept", "application/sdp")])
    }

    /// SETUP of the first (video) track over TCP or UDP; the response, whatever its status.
    pub fn setup(&mut self, tcp: bool) -> Response {
        let sdp = self.describe();
        assert_eq!(sdp.status, 200, "DESCRIBE: {sdp:?}");
        let control = sdp
            .body
            .lines()
            .find_map(|l| l.strip_prefix("a=control:stream="))
            .map(|n| format!("stream={}", n.trim()))
            .expect("a video track control");
        let base = sdp.header("Content-Base").unwrap_or(&self.url).to_owned();
        let track = format!("{}/{control}", base.trim_end_matches('/'));
        let (transport, media) = if tcp {
            ("RTP/AVP/TCP;unicast;interleaved=0-1".to_owned(), Media::Tcp)
        } else {
            let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
            let rtcp = UdpSocket::bind("127.0.0.1:0").unwrap();
            let ports = (
                rtp.local_addr().unwrap().port(),
                rtcp.local_addr().unwrap().port(),
            );
            for s in [&rtp, &rtcp] {
                s.set_read_timeout(Some(POLL)).unwrap();
            }
            (
                format!("RTP/AVP;unicast;client_port={}-{}", ports.0, ports.1),
                Media::Udp { rtp, rtcp },
            )
        };
        let r = self.request("SETUP", &track, &[("Transport", &transport)]);
        if r.status == 200 {
            let session = r.header("Session").expect("a session").to_owned();
            self.session = Some(session.split(';').next().unwrap_or("").to_owned());
            self.media = media;
        }
        r
    }

    /// SETUP then PLAY; panics unless both succeed.
    pub fn play(rtsp: SocketAddr, path: &str, tcp: bool) -> Client {
        let mut c = Client::connect(rtsp, path);
        let setup = c.setup(tcp);
        assert_eq!(setup.status, 200, "SETUP of {path}: {setup:?}");
        let url = c.url.clone();
        let play = c.request("PLAY", &url, &[("Range", "npt=0-")]);
        assert_eq!(play.status, 200, "PLAY of {path}: {play:?}");
        c
    }

    /// TEARDOWN of the session.
    pub fn teardown(&mut self) -> Response {
        let url = self.url.clone();
        let r = self.request("TEARDOWN", &url, &[]);
        self.media = Media::None;
        r
    }

    /// The next media packet, or `None` if none came within `timeout`.
    pub fn next_packet(&mut self, timeout: Duration) -> Option<Packet> {
        let deadline = Instant::now() + timeout;
        loop {
            match &self.media {
                Media::None => panic!("no media set up"),
                Media::Tcp => {
                    while let Some(m) = self.take_message() {
                        if let Message::Interleaved(channel, data) = m {
                            return Some(Packet {
                                rtcp: channel == 1,
                                data,
                            });
                        }
                    }
                    self.fill();
                }
                Media::Udp { rtp, rtcp } => {
                    let mut buf = vec![0u8; 65536];
                    for (socket, is_rtcp) in [(rtp, false), (rtcp, true)] {
                        socket.set_read_timeout(Some(POLL / 2)).unwrap();
                        if let Ok(n) = socket.recv(&mut buf) {
                            return Some(Packet {
                                rtcp: is_rtcp,
                                data: buf[..n].to_vec(),
                            });
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// Reads what the connection has, waiting at most one poll interval.
    fn fill(&mut self) {
        let mut chunk = [0u8; 65536];
        match self.conn.read(&mut chunk) {
            Ok(0) => panic!("the simulator closed the connection"),
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read: {e}"),
        }
    }

    /// Takes one complete message off the buffer, if there is one.
    fn take_message(&mut self) -> Option<Message> {
        if self.buf.first() == Some(&b'$') {
            let len = usize::from(u16::from_be_bytes([*self.buf.get(2)?, *self.buf.get(3)?]));
            if self.buf.len() < 4 + len {
                return None;
            }
            let channel = self.buf[1];
            let data = self.buf[4..4 + len].to_vec();
            self.buf.drain(..4 + len);
            return Some(Message::Interleaved(channel, data));
        }
        let end = self.buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let mut r = Response {
            status: head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            head,
            body: String::new(),
        };
        let len: usize = r
            .header("Content-Length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if self.buf.len() < end + len {
            return None;
        }
        r.body = String::from_utf8_lossy(&self.buf[end..end + len]).into_owned();
        self.buf.drain(..end + len);
        Some(Message::Response(r))
    }
}

enum Message {
    Response(Response),
    Interleaved(u8, Vec<u8>),
}

/// RTCP packet types in a compound packet.
pub fn rtcp_types(compound: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut at = 0;
    while at + 4 <= compound.len() {
        types.push(compound[at + 1]);
        let words = usize::from(u16::from_be_bytes([compound[at + 2], compound[at + 3]]));
        at += 4 * (words + 1);
    }
    types
}

/// An RTP packet's timestamp and payload (after CSRCs and extension, without padding).
pub fn rtp_parts(packet: &[u8]) -> Option<(u32, &[u8])> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return None;
    }
    let mut at = 12 + 4 * usize::from(packet[0] & 0x0f);
    if packet[0] & 0x10 != 0 {
        let words = u16::from_be_bytes([*packet.get(at + 2)?, *packet.get(at + 3)?]);
        at += 4 + 4 * usize::from(words);
    }
    let mut end = packet.len();
    if packet[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*packet.last()?))?;
    }
    let ts = u32::from_be_bytes(packet[4..8].try_into().ok()?);
    Some((ts, packet.get(at..end)?))
}

/// The types of the NAL units an RTP payload starts or carries whole: single NAL unit
/// packets, aggregation packets (STAP-A / AP) and the first fragment of a unit (FU-A / FU).
pub fn payload_nal_types(h265: bool, payload: &[u8]) -> Vec<u8> {
    let Some(&first) = payload.first() else {
        return Vec::new();
    };
    let (ty, header, aggregate, fragment) = if h265 {
        ((first >> 1) & 0x3f, 2, 48, 49)
    } else {
        (first & 0x1f, 1, 24, 28)
    };
    let nal_type = |b: u8| if h265 { (b >> 1) & 0x3f } else { b & 0x1f };
    if ty == aggregate {
        let mut types = Vec::new();
        let mut at = header;
        while at + 2 < payload.len() {
            let len = usize::from(u16::from_be_bytes([payload[at], payload[at + 1]]));
            types.push(nal_type(payload[at + 2]));
            at += 2 + len;
        }
        types
    } else if ty == fragment {
        match payload.get(header) {
            Some(&fu) if fu & 0x80 != 0 => vec![fu & if h265 { 0x3f } else { 0x1f }],
            _ => Vec::new(),
        }
    } else {
        vec![ty]
    }
}
