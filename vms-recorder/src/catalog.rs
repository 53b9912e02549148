//! The recorder's catalog as central sees it (spec/central.md, "Catalog sync"): cameras,
//! streams, status, region, class — never URLs or credentials — versioned as (epoch, seq).
//! The epoch is new at every start; each change found by comparing the catalog with the last
//! one seen is a delta with the next seq. A subscriber that holds a version this recorder can
//! continue from gets the deltas after it, any other gets the whole catalog.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use vms_core::wire::{CatalogCamera, CatalogStream, ChannelEvent};

use crate::cameras::Camera;
use crate::supervisor::Connection;

/// Deltas kept for subscribers that fall behind; older ones get the whole catalog.
const MAX_DELTAS: usize = 1024;

struct Delta {
    seq: u64,
    upserts: Vec<CatalogCamera>,
    removed: Vec<String>,
}

struct State {
    seq: u64,
    current: BTreeMap<String, CatalogCamera>,
    deltas: VecDeque<Delta>,
}

pub struct CatalogLog {
    epoch: String,
    state: Mutex<State>,
}

impl Default for CatalogLog {
    fn default() -> Self {
        CatalogLog {
            epoch: ulid::Ulid::new().to_string(),
            state: Mutex::new(State {
                seq: 0,
                current: BTreeMap::new(),
                deltas: VecDeque::new(),
            }),
        }
    }
}

impl CatalogLog {
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Takes the catalog as it is now; a difference from the last one becomes the next delta.
    pub fn refresh(&self, now: Vec<CatalogCamera>) {
        let mut st = self.state.lock().expect("catalog lock");
        let now: BTreeMap<String, CatalogCamera> =
            now.into_iter().map(|c| (c.id.clone(), c)).collect();
        let upserts: Vec<CatalogCamera> = now
            .iter()
            .filter(|(id, c)| st.current.get(*id) != Some(c))
            .map(|(_, c)| c.clone())
            .collect();
        let removed: Vec<String> = st
            .current
            .keys()
            .filter(|id| !now.contains_key(*id))
            .cloned()
            .collect();
        if upserts.is_empty() && removed.is_empty() && st.seq > 0 {
            return;
        }
        st.seq += 1;
        let seq = st.seq;
        st.current = now;
        st.deltas.push_back(Delta {
            seq,
            upserts,
            removed,
        });
        if st.deltas.len() > MAX_DELTAS {
            st.deltas.pop_front();
        }
    }

    /// What a subscriber holding (`epoch`, `seq`) needs to be current: the deltas after it,
    /// or the whole catalog when it holds anything else.
    pub fn since(&self, epoch: &str, seq: u64) -> Vec<ChannelEvent> {
        let st = self.state.lock().expect("catalog lock");
        if seq == st.seq && epoch == self.epoch {
            return Vec::new();
        }
        let continues = epoch == self.epoch
            && seq < st.seq
            && st.deltas.front().is_some_and(|d| d.seq <= seq + 1);
        if !continues {
            return vec![ChannelEvent::CatalogFull {
                epoch: self.epoch.clone(),
                seq: st.seq,
                cameras: st.current.values().cloned().collect(),
            }];
        }
        st.deltas
            .iter()
            .filter(|d| d.seq > seq)
            .map(|d| ChannelEvent::CatalogDelta {
                epoch: self.epoch.clone(),
                seq: d.seq,
                upserts: d.upserts.clone(),
                removed: d.removed.clone(),
            })
            .collect()
    }
}

/// The catalog entry of a camera with its streams' connections and conformance verdicts.
pub fn entry(
    camera: &Camera,
    streams: &[(String, Connection)],
    verdicts: &[(String, String)],
) -> CatalogCamera {
    let streams: Vec<CatalogStream> = camera
        .spec
        .streams
        .iter()
        .map(|s| CatalogStream {
            name: s.name.clone(),
            connected: streams.iter().any(|(n, c)| *n == s.name && c.connected),
            conformance: verdicts
                .iter()
                .find(|(n, _)| *n == s.name)
                .map(|(_, v)| v.clone()),
        })
        .collect();
    let up = streams.iter().filter(|s| s.connected).count();
    let status = match up {
        0 => "offline",
        n if n == streams.len() => "online",
        _ => "degraded",
    };
    CatalogCamera {
        id: camera.id.to_string(),
        name: camera.spec.name.clone(),
        region: camera.spec.region.to_string(),
        class: camera.spec.class.to_string(),
        code: camera.spec.code.map(|c| c.to_string()),
        location: camera.spec.location,
        status: status.into(),
        streams,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam(id: &str, status: &str) -> CatalogCamera {
        CatalogCamera {
            id: id.into(),
            name: format!("cam {id}"),
            region: "750000000".into(),
            class: "city".into(),
            code: None,
            location: None,
            status: status.into(),
            streams: vec![],
        }
    }

    fn seqs(events: &[ChannelEvent]) -> Vec<(char, u64)> {
        events
            .iter()
            .map(|e| match e {
                ChannelEvent::CatalogFull { seq, .. } => ('F', *seq),
                ChannelEvent::CatalogDelta { seq, .. } => ('D', *seq),
                _ => ('?', 0),
            })
            .collect()
    }

    #[test]
    fn deltas_continue_a_known_version_and_anything_else_gets_it_whole() {
        let log = CatalogLog::default();
        let e = log.epoch().to_owned();
        log.refresh(vec![cam("a", "online")]);
        assert_eq!(seqs(&log.since("", 0)), [('F', 1)]);
        log.refresh(vec![cam("a", "online")]);
        assert!(log.since(&e, 1).is_empty(), "no change, no delta");
        log.refresh(vec![cam("a", "offline"), cam("b", "online")]);
        log.refresh(vec![cam("b", "online")]);
        assert_eq!(seqs(&log.since(&e, 1)), [('D', 2), ('D', 3)]);
        match &log.since(&e, 2)[0] {
            ChannelEvent::CatalogDelta {
                upserts, removed, ..
            } => {
                assert!(upserts.is_empty());
                assert_eq!(removed, &["a".to_owned()]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(seqs(&log.since("another epoch", 2)), [('F', 3)]);
        assert_eq!(seqs(&log.since(&e, 9)), [('F', 3)], "ahead of us: resync");
        for i in 0..MAX_DELTAS + 5 {
            log.refresh(vec![cam(&i.to_string(), "online")]);
        }
        assert_eq!(seqs(&log.since(&e, 3))[0].0, 'F', "too far behind");
    }
}
