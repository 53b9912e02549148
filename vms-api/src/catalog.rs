//! The national camera catalog (spec/central.md, "Catalog sync" and "Directory"): what each
//! recorder's versioned catalog events say, applied to the store together with the
//! recorder's catalog version, so that a resumed channel continues exactly where the store
//! is; and the in-memory directory built from it, searched by region subtree, text, class,
//! status and bounding box in a stable order.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use vms_core::id::{CameraId, RecorderId};
use vms_core::region::RegionCode;
use vms_core::wire::CatalogCamera;
use vms_core::{Error, bail, err};

use crate::store::{Batch, Store, Table};

/// A recorder's catalog version: the epoch of its catalog and the sequence within it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub epoch: String,
    pub seq: u64,
}

/// A camera of the directory.
#[derive(Debug)]
pub struct Entry {
    pub id: CameraId,
    pub region: RegionCode,
    pub recorder: RecorderId,
    pub camera: CatalogCamera,
    name_lc: String,
    /// What text searches look in: the name and the registry number, lower-case, on two
    /// lines (a query cannot hold a line break, so it never matches across them): one
    /// substring search over one allocation a camera, which over a large directory is
    /// several times faster than one search in each field.
    text_lc: String,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    recorder: RecorderId,
    camera: CatalogCamera,
}

type Key = (RegionCode, String, CameraId);

#[derive(Default)]
struct Directory {
    by_id: HashMap<CameraId, Arc<Entry>>,
    order: BTreeMap<Key, Arc<Entry>>,
}

impl Directory {
    fn insert(&mut self, e: Arc<Entry>) {
        self.remove(e.id);
        self.order
            .insert((e.region, e.name_lc.clone(), e.id), e.clone());
        self.by_id.insert(e.id, e);
    }

    fn remove(&mut self, id: CameraId) {
        if let Some(old) = self.by_id.remove(&id) {
            self.order.remove(&(old.region, old.name_lc.clone(), id));
        }
    }
}

pub struct Catalog {
    table: Table,
    dir: RwLock<Directory>,
}

fn cam_key(id: CameraId) -> Vec<u8> {
    [b"cam/".as_slice(), &id.to_bytes()].concat()
}

fn rec_prefix(r: RecorderId) -> Vec<u8> {
    [b"rec/".as_slice(), &r.to_bytes()].concat()
}

fn rec_key(r: RecorderId, id: CameraId) -> Vec<u8> {
    [rec_prefix(r), id.to_bytes().to_vec()].concat()
}

fn version_key(r: RecorderId) -> Vec<u8> {
    [b"ver/".as_slice(), &r.to_bytes()].concat()
}

/// Validates a camera a recorder reports: well formed, and in the recorder's own region (a
/// recorder cannot place cameras in regions it does not serve).
fn entry(
    recorder: RecorderId,
    recorder_region: &RegionCode,
    c: CatalogCamera,
) -> Result<Entry, Error> {
    let id: CameraId = c.id.parse()?;
    let region: RegionCode = c.region.parse().map_err(|e: Error| e.context(&c.id))?;
    if !region.is_within(recorder_region) {
        bail!(
            PermissionDenied,
            "camera {id}: region {region} is outside its recorder's region {recorder_region}"
        );
    }
    vms_core::text::check_text("camera name", &c.name, 256)?;
    if let Some(l) = c.location
        && !(l.lat_deg.abs() <= 90.0 && l.lon_deg.abs() <= 180.0)
    {
        bail!(InvalidArgument, "camera {id}: location out of range");
    }
    Ok(Entry {
        id,
        region,
        recorder,
        name_lc: c.name.to_lowercase(),
        text_lc: format!("{}\n{}", c.name, c.code.as_deref().unwrap_or("")).to_lowercase(),
        camera: c,
    })
}

impl Catalog {
    /// Opens the catalog and builds the directory from the store.
    pub fn open(
        store: &Store,
        recorder_regions: &HashMap<RecorderId, RegionCode>,
    ) -> Result<Catalog, Error> {
        let table = store.table("catalog")?;
        let mut dir = Directory::default();
        for kv in table.scan::<Stored>(b"cam/") {
            let (_, s) = kv?;
            let Some(region) = recorder_regions.get(&s.recorder) else {
                continue;
            };
            match entry(s.recorder, region, s.camera) {
                Ok(e) => dir.insert(Arc::new(e)),
                Err(e) => tracing::warn!(err = %e, "stored catalog entry skipped"),
            }
        }
        Ok(Catalog {
            table,
            dir: RwLock::new(dir),
        })
    }

    /// The version central holds of a recorder's catalog.
    pub fn version(&self, recorder: RecorderId) -> Result<Option<Version>, Error> {
        self.table.get(version_key(recorder))
    }

    /// Replaces everything of `recorder` by `cameras`, at `version`. Returns how many cameras
    /// it now has. Cameras that fail validation are skipped with a warning.
    pub fn apply_full(
        &self,
        recorder: RecorderId,
        region: &RegionCode,
        version: Version,
        cameras: Vec<CatalogCamera>,
    ) -> Result<usize, Error> {
        let entries = valid(recorder, region, cameras);
        let mut batch = Batch::default();
        let mut stale: Vec<CameraId> = Vec::new();
        for kv in self.table.scan::<()>(rec_prefix(recorder)) {
            let (k, ()) = kv?;
            let id = CameraId::from_bytes(k[k.len() - 16..].try_into().expect("16-byte id"));
            if !entries.iter().any(|e| e.id == id) {
                batch.remove(cam_key(id));
                batch.remove(&k);
                stale.push(id);
            }
        }
        for e in &entries {
            self.stage(&mut batch, e)?;
        }
        batch.put(version_key(recorder), &version)?;
        self.table.apply(batch)?;
        let n = entries.len();
        let mut dir = self.dir.write().expect("directory lock");
        for id in stale {
            dir.remove(id);
        }
        for e in entries {
            dir.insert(Arc::new(e));
        }
        Ok(n)
    }

    /// Applies the delta that takes `recorder` from the version central holds to `version`.
    /// A delta that does not follow on (another epoch, a skipped sequence) is refused with
    /// `FailedPrecondition`: the caller resubscribes and gets a full catalog.
    pub fn apply_delta(
        &self,
        recorder: RecorderId,
        region: &RegionCode,
        version: Version,
        upserts: Vec<CatalogCamera>,
        removed: &[String],
    ) -> Result<(), Error> {
        let held = self.version(recorder)?;
        if held
            .as_ref()
            .is_none_or(|h| h.epoch != version.epoch || h.seq + 1 != version.seq)
        {
            bail!(
                FailedPrecondition,
                "recorder {recorder}: catalog delta to {version:?} does not follow {held:?}"
            );
        }
        let entries = valid(recorder, region, upserts);
        let removed: Vec<CameraId> = removed.iter().filter_map(|s| s.parse().ok()).collect();
        let mut batch = Batch::default();
        for &id in &removed {
            // Only the recorder that has a camera can remove it.
            if self.owner(id) == Some(recorder) {
                batch.remove(cam_key(id));
                batch.remove(rec_key(recorder, id));
            }
        }
        for e in &entries {
            self.stage(&mut batch, e)?;
        }
        batch.put(version_key(recorder), &version)?;
        self.table.apply(batch)?;
        let mut dir = self.dir.write().expect("directory lock");
        for id in removed {
            if dir.by_id.get(&id).is_some_and(|e| e.recorder == recorder) {
                dir.remove(id);
            }
        }
        for e in entries {
            dir.insert(Arc::new(e));
        }
        Ok(())
    }

    fn stage(&self, batch: &mut Batch, e: &Entry) -> Result<(), Error> {
        if let Some(prev) = self.owner(e.id).filter(|&p| p != e.recorder) {
            // A camera moved to another recorder: the old one no longer lists it.
            batch.remove(rec_key(prev, e.id));
        }
        batch.put(
            cam_key(e.id),
            &Stored {
                recorder: e.recorder,
                camera: e.camera.clone(),
            },
        )?;
        batch.put(rec_key(e.recorder, e.id), &())
    }

    fn owner(&self, id: CameraId) -> Option<RecorderId> {
        self.dir
            .read()
            .expect("directory lock")
            .by_id
            .get(&id)
            .map(|e| e.recorder)
    }

    pub fn get(&self, id: CameraId) -> Option<Arc<Entry>> {
        self.dir
            .read()
            .expect("directory lock")
            .by_id
            .get(&id)
            .cloned()
    }

    /// How many cameras the directory holds.
    pub fn len(&self) -> usize {
        self.dir.read().expect("directory lock").by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Searches the directory: cameras in `query.region`'s subtree that are also inside one
    /// of `scopes`, matching every filter, in (region, name, id) order, from after
    /// `query.after`. `online` says whether a recorder is up.
    pub fn search(
        &self,
        query: &Query,
        scopes: &[RegionCode],
        online: &dyn Fn(RecorderId) -> bool,
    ) -> SearchResult {
        let dir = self.dir.read().expect("directory lock");
        let mut result = SearchResult::default();
        // The subtrees to walk: the query region cut down to the caller's scopes.
        let mut roots: Vec<RegionCode> = Vec::new();
        for s in scopes {
            if query.region.is_within(s) {
                roots = vec![query.region];
                break;
            }
            if s.is_within(&query.region) && !roots.iter().any(|r| s.is_within(r)) {
                roots.retain(|r| !r.is_within(s));
                roots.push(*s);
            }
        }
        roots.sort();
        let text = query.text.as_deref().map(str::to_lowercase);
        // Neighbours in the walk mostly share a recorder: its state is asked once a run.
        let mut last_recorder: Option<(RecorderId, bool)> = None;
        let mut tally = Tally::new(&query.region);
        for root in roots {
            let (lo, hi) = subtree_bounds(&root);
            for ((region, name, id), e) in dir
                .order
                .range((lo, String::new(), CameraId::from_bytes([0; 16]))..)
            {
                if region > &hi {
                    break;
                }
                let up = match last_recorder {
                    Some((r, up)) if r == e.recorder => up,
                    _ => {
                        let up = online(e.recorder);
                        last_recorder = Some((e.recorder, up));
                        up
                    }
                };
                if !matches(query, text.as_deref(), e, up) {
                    continue;
                }
                result.total += 1;
                tally.add(region);
                if query
                    .after
                    .as_ref()
                    .is_some_and(|(r, n, i)| (region, name, id) <= (r, n, i))
                {
                    continue;
                }
                if result.cameras.len() < query.limit {
                    result.cameras.push((e.clone(), up));
                    result.last = Some((*region, name.clone(), *id));
                } else {
                    result.more = true;
                }
            }
        }
        result.counts = tally.finish();
        result
    }
}

/// Matches per region one level below the searched one. The walk visits regions in order,
/// so each child's matches come in one run and the map is touched once a run, not once a
/// match.
struct Tally<'a> {
    parent: &'a RegionCode,
    counts: BTreeMap<RegionCode, usize>,
    /// The last region counted, its child, and the child's matches in this run.
    run: Option<(RegionCode, RegionCode, usize)>,
}

impl<'a> Tally<'a> {
    fn new(parent: &'a RegionCode) -> Tally<'a> {
        Tally {
            parent,
            counts: BTreeMap::new(),
            run: None,
        }
    }

    fn add(&mut self, region: &RegionCode) {
        if let Some((last, _, n)) = &mut self.run
            && last == region
        {
            *n += 1;
            return;
        }
        let child = child_of(self.parent, region);
        if let Some((last, c, n)) = &mut self.run
            && *c == child
        {
            *last = *region;
            *n += 1;
            return;
        }
        self.flush();
        self.run = Some((*region, child, 1));
    }

    fn flush(&mut self) {
        if let Some((_, child, n)) = self.run.take() {
            *self.counts.entry(child).or_insert(0) += n;
        }
    }

    fn finish(mut self) -> BTreeMap<RegionCode, usize> {
        self.flush();
        self.counts
    }
}

fn valid(recorder: RecorderId, region: &RegionCode, cameras: Vec<CatalogCamera>) -> Vec<Entry> {
    cameras
        .into_iter()
        .filter_map(|c| match entry(recorder, region, c) {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::warn!(recorder = %recorder, err = %e, "catalog camera refused");
                None
            }
        })
        .collect()
}

/// A directory search.
#[derive(Clone, Debug)]
pub struct Query {
    pub region: RegionCode,
    pub text: Option<String>,
    pub class: Option<String>,
    /// `online`, `degraded`, `offline`, or `recorder_offline`.
    pub status: Option<String>,
    /// `pass` (every stream's newest conformance report passes), `fail` (some stream's
    /// fails) or `unchecked` (some stream has none yet).
    pub conformance: Option<String>,
    /// `[min_lon, min_lat, max_lon, max_lat]`.
    pub bbox: Option<[f64; 4]>,
    pub after: Option<(RegionCode, String, CameraId)>,
    pub limit: usize,
}

#[derive(Default)]
pub struct SearchResult {
    /// The page, with whether each camera's recorder is online.
    pub cameras: Vec<(Arc<Entry>, bool)>,
    /// Every match, on every page.
    pub total: usize,
    /// Matches per region one level below the query's region.
    pub counts: BTreeMap<RegionCode, usize>,
    /// The key of the page's last camera, to continue after.
    pub last: Option<(RegionCode, String, CameraId)>,
    pub more: bool,
}

fn matches(q: &Query, text: Option<&str>, e: &Entry, recorder_up: bool) -> bool {
    if q.class.as_deref().is_some_and(|c| c != e.camera.class) {
        return false;
    }
    if let Some(s) = q.status.as_deref() {
        let ok = match s {
            "recorder_offline" => !recorder_up,
            s => recorder_up && s == e.camera.status,
        };
        if !ok {
            return false;
        }
    }
    if let Some(c) = q.conformance.as_deref() {
        let verdicts = || e.camera.streams.iter().map(|s| s.conformance.as_deref());
        let ok = match c {
            "pass" => verdicts().all(|v| v == Some("pass")),
            "fail" => verdicts().any(|v| v == Some("fail")),
            _ => verdicts().any(|v| v.is_none()),
        };
        if !ok {
            return false;
        }
    }
    if let Some([min_lon, min_lat, max_lon, max_lat]) = q.bbox {
        let Some(l) = e.camera.location else {
            return false;
        };
        if !(min_lon..=max_lon).contains(&l.lon_deg) || !(min_lat..=max_lat).contains(&l.lat_deg) {
            return false;
        }
    }
    if let Some(t) = text
        && !(e.text_lc.contains(t) || e.camera.id.eq_ignore_ascii_case(t))
    {
        return false;
    }
    true
}

/// The first and last codes of a region's subtree.
fn subtree_bounds(root: &RegionCode) -> (RegionCode, RegionCode) {
    let s = root.as_str();
    let significant = significant_digits(root);
    let hi = format!("{}{}", &s[..significant], "9".repeat(9 - significant));
    (*root, hi.parse().unwrap_or(*root))
}

/// How many leading digits of a code are significant: KATO levels end after 2, 4, 6 and 9.
fn significant_digits(code: &RegionCode) -> usize {
    let b = code.as_str().as_bytes();
    [0usize, 2, 4, 6, 9]
        .into_iter()
        .find(|&n| b[n..].iter().all(|&d| d == b'0'))
        .unwrap_or(9)
}

/// The region one KATO level below `parent` that contains `code` (or `code` itself at the
/// deepest level).
fn child_of(parent: &RegionCode, code: &RegionCode) -> RegionCode {
    let next = match significant_digits(parent) {
        0 => 2,
        2 => 4,
        4 => 6,
        _ => 9,
    };
    let s = code.as_str();
    format!("{}{}", &s[..next], "0".repeat(9 - next))
        .parse()
        .unwrap_or(*code)
}

/// An opaque directory cursor: the last key of a page.
pub fn encode_cursor(key: &(RegionCode, String, CameraId)) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{}\u{1f}{}\u{1f}{}", key.0, key.2, key.1))
}

pub fn decode_cursor(s: &str) -> Result<(RegionCode, String, CameraId), Error> {
    use base64::Engine;
    let bad = || err!(InvalidArgument, "cursor: not one this directory gave");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = text.splitn(3, '\u{1f}');
    let (Some(r), Some(id), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    Ok((
        r.parse().map_err(|_| bad())?,
        name.to_owned(),
        id.parse().map_err(|_| bad())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vms_core::wire::{CatalogStream, Location};

    fn cam(name: &str, region: &str, lat: f64) -> CatalogCamera {
        CatalogCamera {
            id: CameraId::generate().to_string(),
            name: name.into(),
            region: region.into(),
            class: "city".into(),
            code: None,
            location: Some(Location {
                lat_deg: lat,
                lon_deg: 76.9,
            }),
            status: "online".into(),
            streams: vec![CatalogStream {
                name: "main".into(),
                connected: true,
                conformance: None,
            }],
        }
    }

    fn r(s: &str) -> RegionCode {
        s.parse().unwrap()
    }

    fn all(region: &str) -> Query {
        Query {
            region: r(region),
            text: None,
            class: None,
            status: None,
            conformance: None,
            bbox: None,
            after: None,
            limit: 1000,
        }
    }

    fn v(epoch: &str, seq: u64) -> Version {
        Version {
            epoch: epoch.into(),
            seq,
        }
    }

    #[test]
    fn full_then_deltas_then_resync_and_search() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s")).unwrap();
        let almaty = RecorderId::generate();
        let astana = RecorderId::generate();
        let regions = HashMap::from([(almaty, r("750000000")), (astana, r("710000000"))]);
        let cat = Catalog::open(&store, &regions).unwrap();
        let a = vec![
            cam("Abay ave 1", "751110000", 43.2),
            cam("Dostyk 5", "751210000", 43.3),
            cam("intruder", "710000000", 51.1), // outside Almaty: refused
        ];
        assert_eq!(
            cat.apply_full(almaty, &r("750000000"), v("e1", 1), a.clone())
                .unwrap(),
            2
        );
        cat.apply_full(
            astana,
            &r("710000000"),
            v("x", 7),
            vec![cam("Baiterek", "711110000", 51.1)],
        )
        .unwrap();
        assert_eq!(cat.len(), 3);

        // Deltas must follow on.
        let moved = cam("Satpaev 9", "751110000", 43.25);
        assert!(
            cat.apply_delta(almaty, &r("750000000"), v("e1", 3), vec![], &[])
                .is_err()
        );
        assert!(
            cat.apply_delta(almaty, &r("750000000"), v("e2", 2), vec![], &[])
                .is_err()
        );
        cat.apply_delta(
            almaty,
            &r("750000000"),
            v("e1", 2),
            vec![moved.clone()],
            &[a[1].id.clone()],
        )
        .unwrap();
        // Another recorder cannot remove Almaty's camera.
        cat.apply_delta(
            astana,
            &r("710000000"),
            v("x", 8),
            vec![],
            std::slice::from_ref(&moved.id),
        )
        .unwrap();
        assert_eq!(cat.len(), 3);

        let up = |_| true;
        let rep = r("000000000");
        let res = cat.search(&all("000000000"), &[rep], &up);
        let names: Vec<&str> = res
            .cameras
            .iter()
            .map(|(e, _)| e.camera.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["Baiterek", "Abay ave 1", "Satpaev 9"],
            "region, then name order"
        );
        assert_eq!(res.counts.get(&r("750000000")), Some(&2));
        assert_eq!(res.counts.get(&r("710000000")), Some(&1));

        // Scope cuts the query; text, bbox and status filter.
        let res = cat.search(&all("000000000"), &[r("710000000")], &up);
        assert_eq!(res.total, 1);
        let mut q = all("750000000");
        q.text = Some("SATP".into());
        assert_eq!(cat.search(&q, &[rep], &up).total, 1);
        q.text = None;
        q.bbox = Some([76.0, 43.22, 77.0, 43.3]);
        assert_eq!(cat.search(&q, &[rep], &up).total, 1);
        let mut q = all("000000000");
        q.status = Some("recorder_offline".into());
        let almaty_down = |id| id != almaty;
        assert_eq!(cat.search(&q, &[rep], &almaty_down).total, 2);

        // Paging in a stable order covers everything once.
        let mut q = all("000000000");
        q.limit = 1;
        let mut seen = Vec::new();
        loop {
            let page = cat.search(&q, &[rep], &up);
            seen.extend(page.cameras.iter().map(|(e, _)| e.id));
            if !page.more {
                break;
            }
            let c = encode_cursor(page.last.as_ref().unwrap());
            q.after = Some(decode_cursor(&c).unwrap());
        }
        assert_eq!(seen.len(), 3);

        // A full resync drops what the recorder no longer has; reopening rebuilds the same.
        cat.apply_full(almaty, &r("750000000"), v("e3", 1), vec![moved.clone()])
            .unwrap();
        assert_eq!(cat.len(), 2);
        drop(cat);
        let cat = Catalog::open(&store, &regions).unwrap();
        assert_eq!(cat.len(), 2);
        assert_eq!(cat.version(almaty).unwrap(), Some(v("e3", 1)));
        assert!(decode_cursor("garbage!").is_err());
    }

    #[test]
    fn the_conformance_filter_reads_every_stream() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s")).unwrap();
        let almaty = RecorderId::generate();
        let regions = HashMap::from([(almaty, r("750000000"))]);
        let cat = Catalog::open(&store, &regions).unwrap();
        let with = |name: &str, verdicts: &[Option<&str>]| {
            let mut c = cam(name, "751110000", 43.2);
            c.streams = verdicts
                .iter()
                .enumerate()
                .map(|(i, v)| CatalogStream {
                    name: format!("s{i}"),
                    connected: true,
                    conformance: v.map(str::to_owned),
                })
                .collect();
            c
        };
        let cameras = vec![
            with("passes", &[Some("pass"), Some("pass")]),
            with("sub fails", &[Some("pass"), Some("fail")]),
            with("half checked", &[Some("pass"), None]),
        ];
        cat.apply_full(almaty, &r("750000000"), v("e", 1), cameras)
            .unwrap();
        let names = |filter: &str| {
            let mut q = all("750000000");
            q.conformance = Some(filter.into());
            let res = cat.search(&q, &[r("000000000")], &|_| true);
            res.cameras
                .iter()
                .map(|(e, _)| e.camera.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("pass"), ["passes"]);
        assert_eq!(names("fail"), ["sub fails"]);
        assert_eq!(names("unchecked"), ["half checked"]);
    }

    #[test]
    fn counts_per_child_and_text_in_name_or_code() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s")).unwrap();
        let almaty = RecorderId::generate();
        let cat = Catalog::open(&store, &HashMap::from([(almaty, r("750000000"))])).unwrap();
        let mut coded = cam("Gate", "751210000", 43.3);
        coded.code = Some("75121000013100000042".into());
        let cameras = vec![
            cam("Abay ave 1", "751110000", 43.2),
            cam("Abay ave 2", "751110000", 43.2),
            cam("Abay ave 3", "751120000", 43.2),
            coded,
            cam("Dostyk 5", "751310000", 43.3),
        ];
        cat.apply_full(almaty, &r("750000000"), v("e", 1), cameras)
            .unwrap();
        let up = |_| true;
        let counts = |q: &Query, scopes: &[RegionCode]| {
            let res = cat.search(q, scopes, &up);
            let counts: Vec<(String, usize)> = res
                .counts
                .iter()
                .map(|(r, n)| (r.to_string(), *n))
                .collect();
            (res.total, counts)
        };
        let rep = [r("000000000")];
        assert_eq!(
            counts(&all("751100000"), &rep),
            (3, vec![("751110000".into(), 2), ("751120000".into(), 1)])
        );
        // Two scopes under one child of the query region add up there.
        assert_eq!(
            counts(&all("000000000"), &[r("751110000"), r("751310000")]),
            (3, vec![("750000000".into(), 3)])
        );
        let mut q = all("750000000");
        q.text = Some("00042".into());
        assert_eq!(counts(&q, &rep), (1, vec![("751200000".into(), 1)]));
        q.text = Some("ABAY AVE".into());
        assert_eq!(counts(&q, &rep).0, 3);
    }
}
