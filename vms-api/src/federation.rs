//! Federated queries (spec/central.md, "Federated queries"): one question about many cameras,
//! sent concurrently to every recorder concerned over its channel, each with its own
//! deadline. The answer comes when the last recorder answers or its deadline passes, and
//! names the recorders, regions and cameras left out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use vms_core::id::RecorderId;
use vms_core::wire::{
    CameraRecordings, FederatedRecordings, MissingRecorder, RecordingsQuery, RecordingsQueryResult,
};
use vms_core::{Error, ErrorKind};

use crate::catalog::Entry;
use crate::service::Central;

/// Recorded ranges of `cameras` (already authorised) over `[start, end)`.
pub async fn recordings(
    central: &Arc<Central>,
    cameras: &[Arc<Entry>],
    stream: &str,
    start: &str,
    end: &str,
    deadline: Duration,
) -> FederatedRecordings {
    let mut by_recorder: BTreeMap<RecorderId, Vec<&Arc<Entry>>> = BTreeMap::new();
    for e in cameras {
        by_recorder.entry(e.recorder).or_default().push(e);
    }
    let calls = by_recorder.into_iter().map(|(recorder, entries)| {
        let query = RecordingsQuery {
            cameras: entries.iter().map(|e| e.camera.id.clone()).collect(),
            stream: Some(stream.to_owned()),
            start: start.to_owned(),
            end: end.to_owned(),
            deadline_ms: None,
        };
        async move {
            let answer: Result<RecordingsQueryResult, Error> = async {
                let body =
                    serde_json::to_vec(&query).map_err(|e| vms_core::err!(Internal, "{e}"))?;
                central
                    .channels
                    .json(
                        recorder,
                        hyper::Method::POST,
                        "/api/v1/recordings/query",
                        Some(body),
                        deadline,
                    )
                    .await
            }
            .await;
            (recorder, entries, answer)
        }
    });
    let mut out = FederatedRecordings {
        results: Vec::new(),
        missing: Vec::new(),
        complete: true,
    };
    for (recorder, entries, answer) in futures::future::join_all(calls).await {
        match answer {
            Ok(r) => {
                for rec in r.results {
                    if let Some(e) = entries.iter().find(|e| e.camera.id == rec.camera) {
                        out.results.push(CameraRecordings {
                            camera: rec.camera.clone(),
                            recorder: recorder.to_string(),
                            region: e.region.to_string(),
                            recordings: rec,
                        });
                    }
                }
            }
            Err(e) => {
                let reason = if !central.channels.is_open(recorder) {
                    "offline"
                } else if e.kind() == ErrorKind::Unavailable {
                    "timeout"
                } else {
                    "error"
                };
                tracing::info!(recorder = %recorder, err = %e, reason, "recorder left out of a query");
                let record = central.registry.get(recorder).ok().flatten();
                out.complete = false;
                out.missing.push(MissingRecorder {
                    recorder: recorder.to_string(),
                    name: record.as_ref().map_or_else(String::new, |r| r.name.clone()),
                    region: record
                        .map_or_else(|| entries[0].region.to_string(), |r| r.region.to_string()),
                    cameras: entries.iter().map(|e| e.camera.id.clone()).collect(),
                    reason: reason.into(),
                });
            }
        }
    }
    out
}
