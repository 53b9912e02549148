//! Central's state, shared by its API, its channel port and its background tasks, and the
//! way it starts and stops.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use vms_core::audit::Action;
use vms_core::id::CameraId;
use vms_core::{Error, IoResultExt, err};

use crate::audit::Audit;
use crate::catalog::Catalog;
use crate::channel::Channels;
use crate::config::Config;
use crate::pki::Pki;
use crate::registry::Registry;
use crate::store::Store;
use crate::users::{User, Users};

pub struct Central {
    pub config: Config,
    pub store: Store,
    pub pki: Pki,
    pub registry: Arc<Registry>,
    pub catalog: Catalog,
    pub channels: Channels,
    pub users: Users,
    pub audit: Audit,
    pub regions: vms_core::region::RegionTree,
}

/// How often recorders send heartbeats: a third of the time central waits for one.
pub fn heartbeat_interval(config: &Config) -> Duration {
    Duration::from_millis(config.heartbeat_timeout_ms / 3)
}

impl Central {
    /// Opens the store and the root of trust (made at first start).
    pub fn open(config: Config) -> Result<Central, Error> {
        std::fs::create_dir_all(&config.data_dir)
            .io_context(|| format!("creating {}", config.data_dir.display()))?;
        let store = Store::open(&config.data_dir.join("store"))?;
        let pki = Pki::load_or_create(&config.data_dir, &config.tls_names)?;
        let registry = Registry::open(&store)?;
        let regions: HashMap<_, _> = registry
            .list()?
            .into_iter()
            .map(|r| (r.id, r.region))
            .collect();
        let catalog = Catalog::open(&store, &regions)?;
        let users = Users::open(&store, Duration::from_secs(config.session_ttl_secs))?;
        let audit = Audit::open(&store)?;
        let regions = crate::regions::load(config.regions_file.as_deref())?;
        Ok(Central {
            config,
            store,
            pki,
            registry: Arc::new(registry),
            catalog,
            channels: Channels::default(),
            users,
            audit,
            regions,
        })
    }
}

impl Central {
    /// Logs what a user did in central's audit trail, durably, before it is acknowledged.
    pub async fn audit(
        &self,
        user: &User,
        action: Action,
        camera: Option<CameraId>,
        details: serde_json::Value,
    ) -> Result<(), Error> {
        let actor = format!("user:{}", user.id);
        let mut details = details;
        if let Some(d) = details.as_object_mut() {
            d.insert("name".into(), user.username.clone().into());
        }
        self.audit_as(&actor, action, camera, details).await
    }

    /// Logs what `actor` (`anonymous`, `central`, `recorder:<id>`) did.
    pub async fn audit_as(
        &self,
        actor: &str,
        action: Action,
        camera: Option<CameraId>,
        details: serde_json::Value,
    ) -> Result<(), Error> {
        let details = match details {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        self.audit
            .append(actor, action, camera, details)
            .await
            .map(|_| ())
    }

    /// The name of a region, when the region tree lists it.
    pub fn region_name(&self, code: &vms_core::region::RegionCode) -> Option<String> {
        self.regions.name(code).map(|n| n.en().to_owned())
    }
}

/// The addresses central serves on, once bound.
pub struct Bound {
    pub api: SocketAddr,
    pub channel: SocketAddr,
}

/// Binds both ports and serves until `shutdown` resolves.
pub async fn run(
    central: Arc<Central>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_bound: impl FnOnce(&Bound),
) -> Result<(), Error> {
    let api = TcpListener::bind(central.config.listen)
        .await
        .map_err(|e| err!(Unavailable, "listen {}: {e}", central.config.listen))?;
    let channel = TcpListener::bind(central.config.channel_listen)
        .await
        .map_err(|e| {
            err!(
                Unavailable,
                "channel_listen {}: {e}",
                central.config.channel_listen
            )
        })?;
    on_bound(&Bound {
        api: api.local_addr().io_context(|| "api address".to_owned())?,
        channel: channel
            .local_addr()
            .io_context(|| "channel address".to_owned())?,
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    tokio::spawn(crate::channel::serve(
        central.clone(),
        channel,
        stop_rx.clone(),
    ));
    tokio::spawn(expire_heartbeats(central.clone(), stop_rx.clone()));
    tokio::spawn(housekeeping(central.clone(), stop_rx.clone()));
    let mut stop = stop_rx;
    axum::serve(
        api,
        crate::api::router(central.clone()).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { stopped(&mut stop).await })
    .await
    .map_err(|e| err!(Unavailable, "serving the API: {e}"))?;
    let store = central.store.clone();
    tokio::task::spawn_blocking(move || store.flush())
        .await
        .map_err(|e| err!(Internal, "{e}"))?
}

/// Marks recorders offline when their heartbeats stop, even if the connection looks open.
async fn expire_heartbeats(central: Arc<Central>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let timeout = Duration::from_millis(central.config.heartbeat_timeout_ms);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped(&mut stop) => return,
        }
        central.registry.expire(timeout);
    }
}

/// Resolves once the stop signal is given (or its sender is gone).
pub async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|&s| s).await;
}

/// How often central signs its own audit head and forgets expired sessions.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);

async fn housekeeping(central: Arc<Central>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
    let mut signed = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped(&mut stop) => return,
        }
        if signed.as_ref() != Some(&central.audit.own_head()) {
            match central.audit.checkpoint_own(central.pki.token_key()).await {
                Ok(c) => signed = Some(c.head()),
                Err(e) => tracing::error!(err = %e, "signing central's audit checkpoint"),
            }
        }
        let c = central.clone();
        let purged =
            tokio::task::spawn_blocking(move || c.users.purge_expired(jiff::Timestamp::now()))
                .await;
        if let Ok(Err(e)) = purged {
            tracing::warn!(err = %e, "purging expired sessions");
        }
    }
}
