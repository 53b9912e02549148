//! Central's users and their login sessions: accounts with a role and the regions they may see,
//! argon2id password hashes, bearer-token sessions of which only the token's SHA-256 is stored,
//! the login rate limit, and the first administrator. What a role may do where is `authz`'s
//! job. Every call that depends on the time takes `now`, so tests run on simulated time.
//!
//! Store layout: table `users` holds `id/<16-byte id>` → the user and `name/<username>` → its
//! id, written together in one batch; table `sessions` holds `<SHA-256 of token>` → session.

mod limit;
mod password;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vms_core::id::UserId;
use vms_core::region::RegionCode;
use vms_core::{Error, ErrorKind, bail, err};

use crate::authz::republic;
use crate::store::{Batch, Store, Table};
use password::Hasher;

/// Shortest username, in characters.
pub const MIN_USERNAME_CHARS: usize = 3;
/// Longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;
/// Most region scopes one user may hold.
pub const MAX_SCOPES: usize = 256;
/// Length of the password [`bootstrap_admin`] generates.
pub const BOOTSTRAP_PASSWORD_CHARS: usize = 24;
/// Length of a session token: 32 random bytes in unpadded URL-safe base64.
pub const TOKEN_CHARS: usize = 43;

/// What a user may do; `authz` holds the table of permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Watches live video.
    Operator,
    /// Reviews, exports and holds footage as evidence; also live video and snapshots.
    Investigator,
    /// Runs cameras, recorders and enrolment in their regions; also live video and snapshots.
    RegionalAdmin,
    /// Everything, users included.
    NationalAdmin,
}

impl Role {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Investigator => "investigator",
            Role::RegionalAdmin => "regional_admin",
            Role::NationalAdmin => "national_admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user of central.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    /// Lower-case, 3–64 characters of `[a-z0-9._-]`, unique.
    pub username: String,
    pub role: Role,
    /// The regions (and their subtrees) the user sees: at least one, sorted, no duplicates.
    pub scopes: Vec<RegionCode>,
    /// argon2id PHC string. Never part of an API type, and left out of `Debug`.
    pub password_hash: String,
    pub created: Timestamp,
    pub disabled: bool,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("scopes", &self.scopes)
            .field("created", &self.created)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// Changes to a user; a field left `None` stays as it is.
#[derive(Default)]
pub struct UserUpdate {
    pub role: Option<Role>,
    pub scopes: Option<Vec<RegionCode>>,
    /// A new password; it ends every session of the user.
    pub password: Option<String>,
    /// Disabling ends every session of the user.
    pub disabled: Option<bool>,
}

/// A login session. Its token is given once, by [`Users::login`], and never stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub user: UserId,
    pub created: Timestamp,
    pub expires: Timestamp,
}

/// Why a login failed. `retry_after_secs` is set when the rate limit refused the attempt
/// (kind `ResourceExhausted`); the API answers that with `429` and a `Retry-After` header.
#[derive(Debug)]
pub struct LoginError {
    pub error: Error,
    pub retry_after_secs: Option<u64>,
}

impl From<Error> for LoginError {
    fn from(error: Error) -> Self {
        LoginError {
            error,
            retry_after_secs: None,
        }
    }
}

/// A user as stored.
#[derive(Serialize, Deserialize)]
struct UserRecord {
    id: UserId,
    username: String,
    role: Role,
    scopes: Vec<RegionCode>,
    password_hash: String,
    /// RFC 3339.
    created: String,
    disabled: bool,
}

/// A session as stored, under the SHA-256 of its token.
#[derive(Serialize, Deserialize)]
struct SessionRecord {
    user: UserId,
    /// RFC 3339.
    created: String,
    /// RFC 3339.
    expires: String,
}

fn parse_time(what: &str, s: &str) -> Result<Timestamp, Error> {
    s.parse()
        .map_err(|e| err!(DataLoss, "stored {what} time {s:?}: {e}"))
}

impl UserRecord {
    fn new(u: &User) -> Self {
        UserRecord {
            id: u.id,
            username: u.username.clone(),
            role: u.role,
            scopes: u.scopes.clone(),
            password_hash: u.password_hash.clone(),
            created: u.created.to_string(),
            disabled: u.disabled,
        }
    }

    fn into_user(self) -> Result<User, Error> {
        Ok(User {
            created: parse_time(&format!("user {}", self.id), &self.created)?,
            id: self.id,
            username: self.username,
            role: self.role,
            scopes: self.scopes,
            password_hash: self.password_hash,
            disabled: self.disabled,
        })
    }
}

impl SessionRecord {
    fn into_session(self) -> Result<Session, Error> {
        Ok(Session {
            user: self.user,
            created: parse_time("session", &self.created)?,
            expires: parse_time("session", &self.expires)?,
        })
    }
}

fn id_key(id: UserId) -> Vec<u8> {
    [&b"id/"[..], &id.to_bytes()].concat()
}

fn name_key(username: &str) -> Vec<u8> {
    [b"name/", username.as_bytes()].concat()
}

fn session_key(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn is_valid_username(name: &str) -> bool {
    (MIN_USERNAME_CHARS..=MAX_USERNAME_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// The stored form of a username: lower-case, checked.
fn normalize_username(username: &str) -> Result<String, Error> {
    let name = username.to_ascii_lowercase();
    if !is_valid_username(&name) {
        bail!(
            InvalidArgument,
            "username: {MIN_USERNAME_CHARS}..={MAX_USERNAME_CHARS} characters of a-z, 0-9, '.', \
             '_' and '-'"
        );
    }
    Ok(name)
}

fn normalize_scopes(mut scopes: Vec<RegionCode>) -> Result<Vec<RegionCode>, Error> {
    scopes.sort_unstable();
    scopes.dedup();
    if scopes.is_empty() || scopes.len() > MAX_SCOPES {
        bail!(
            InvalidArgument,
            "scopes: 1..={MAX_SCOPES} region codes, not {}",
            scopes.len()
        );
    }
    Ok(scopes)
}

/// Whether `u` can administer users: an enabled national admin of the whole republic.
fn is_root_admin(u: &User) -> bool {
    u.role == Role::NationalAdmin && !u.disabled && u.scopes.contains(&republic())
}

fn wrong_credentials() -> Error {
    err!(Unauthenticated, "wrong username or password")
}

fn invalid_session() -> Error {
    err!(Unauthenticated, "invalid or expired session")
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| err!(Internal, "user store task: {e}"))?
}

/// The users and sessions of central. Cheap to clone; open one per store.
#[derive(Clone)]
pub struct Users {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    users: Table,
    sessions: Table,
    /// Serialises changes to `users`, so a username check and its insert are one step.
    writes: Mutex<()>,
    hasher: Arc<Hasher>,
    limiter: limit::LoginLimiter,
    session_ttl: SignedDuration,
}

impl Users {
    /// Opens the users of `store`; sessions last `session_ttl` (config `session_ttl_secs`).
    /// Blocking: computes one argon2 hash (the dummy for unknown usernames).
    pub fn open(store: &Store, session_ttl: Duration) -> Result<Users, Error> {
        Users::with_hasher(store, session_ttl, Hasher::owasp()?)
    }

    fn with_hasher(store: &Store, session_ttl: Duration, hasher: Hasher) -> Result<Users, Error> {
        let session_ttl = SignedDuration::try_from(session_ttl)
            .map_err(|e| err!(InvalidArgument, "session_ttl_secs: {e}"))?;
        Ok(Users {
            inner: Arc::new(Inner {
                store: store.clone(),
                users: store.table("users")?,
                sessions: store.table("sessions")?,
                writes: Mutex::new(()),
                hasher: Arc::new(hasher),
                limiter: limit::LoginLimiter::new(),
                session_ttl,
            }),
        })
    }

    /// Creates a user. The username is stored lower-case; `AlreadyExists` if it is taken.
    pub async fn create(
        &self,
        username: &str,
        password: &str,
        role: Role,
        scopes: Vec<RegionCode>,
        now: Timestamp,
    ) -> Result<User, Error> {
        let username = normalize_username(username)?;
        let scopes = normalize_scopes(scopes)?;
        password::validate(password)?;
        // Fail fast before the costly hash; checked again under the lock.
        if self.find(&username)?.is_some() {
            bail!(AlreadyExists, "user {username:?} exists");
        }
        let user = User {
            id: UserId::generate(),
            username,
            role,
            scopes,
            password_hash: self.inner.hasher.hash_async(password).await?,
            created: now,
            disabled: false,
        };
        let inner = self.inner.clone();
        blocking(move || inner.insert(user)).await
    }

    /// The user with this id; `NotFound` if there is none.
    pub fn get(&self, id: UserId) -> Result<User, Error> {
        self.inner.get(id)
    }

    /// The user with this username, in any case; `NotFound` if there is none.
    pub fn by_username(&self, username: &str) -> Result<User, Error> {
        let name = username.to_ascii_lowercase();
        self.find(&name)?.ok_or_else(|| {
            if is_valid_username(&name) {
                err!(NotFound, "user {name:?} not found")
            } else {
                err!(NotFound, "user not found")
            }
        })
    }

    fn find(&self, lower_case_name: &str) -> Result<Option<User>, Error> {
        if !is_valid_username(lower_case_name) {
            return Ok(None);
        }
        match self.inner.users.get::<UserId>(name_key(lower_case_name))? {
            Some(id) => self.get(id).map(Some),
            None => Ok(None),
        }
    }

    /// Every user, oldest first.
    pub fn list(&self) -> Result<Vec<User>, Error> {
        self.inner.list()
    }

    /// Changes a user. A new password, or disabling, ends the user's sessions. The last
    /// enabled national admin of the whole republic cannot be disabled, demoted or narrowed
    /// (`FailedPrecondition`), so central always has someone who can manage users.
    pub async fn update(&self, id: UserId, change: UserUpdate) -> Result<User, Error> {
        let scopes = change.scopes.map(normalize_scopes).transpose()?;
        let password_hash = match &change.password {
            Some(p) => {
                password::validate(p)?;
                Some(self.inner.hasher.hash_async(p).await?)
            }
            None => None,
        };
        let inner = self.inner.clone();
        blocking(move || {
            let _writing = inner.lock_writes();
            let old = inner.get(id)?;
            let mut new = old.clone();
            if let Some(role) = change.role {
                new.role = role;
            }
            if let Some(scopes) = scopes {
                new.scopes = scopes;
            }
            let new_password = password_hash.is_some();
            if let Some(hash) = password_hash {
                new.password_hash = hash;
            }
            if let Some(disabled) = change.disabled {
                new.disabled = disabled;
            }
            inner.keep_an_admin(&old, Some(&new))?;
            inner.users.put(id_key(id), &UserRecord::new(&new))?;
            if new_password || (new.disabled && !old.disabled) {
                inner.end_sessions_of(id)?;
            }
            inner.store.flush()?;
            Ok(new)
        })
        .await
    }

    /// Deletes a user and their sessions; `NotFound` if there is none. The last enabled
    /// national admin of the whole republic cannot be deleted (`FailedPrecondition`).
    pub async fn delete(&self, id: UserId) -> Result<(), Error> {
        let inner = self.inner.clone();
        blocking(move || {
            let _writing = inner.lock_writes();
            let user = inner.get(id)?;
            inner.keep_an_admin(&user, None)?;
            let mut batch = Batch::default();
            batch.remove(id_key(id));
            batch.remove(name_key(&user.username));
            inner.users.apply(batch)?;
            inner.end_sessions_of(id)?;
            inner.store.flush()
        })
        .await
    }

    /// Logs in: returns a new session and its bearer token (given only here). Wrong password,
    /// unknown username and disabled account fail alike (`Unauthenticated`, one message, one
    /// argon2 verification each). Past the rate limit the attempt fails at once with
    /// `ResourceExhausted` and `retry_after_secs`, and no password is checked.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: IpAddr,
        now: Timestamp,
    ) -> Result<(String, Session), LoginError> {
        // A name that cannot exist is not counted under its own key (it would only take room)
        // but still costs the client an attempt and a verification.
        let name = (username.len() <= MAX_USERNAME_CHARS)
            .then(|| username.to_ascii_lowercase())
            .filter(|n| is_valid_username(n));
        if let Err(secs) = self.inner.limiter.admit(name.as_deref(), client, now) {
            return Err(LoginError {
                error: err!(
                    ResourceExhausted,
                    "too many login attempts; retry in {secs} s"
                ),
                retry_after_secs: Some(secs),
            });
        }
        let user = match &name {
            Some(n) => self.find(n)?,
            None => None,
        };
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
        let matches = self
            .inner
            .hasher
            .verify_async(password, stored_hash)
            .await?;
        let user = match user {
            Some(u) if matches && !u.disabled => u,
            _ => return Err(wrong_credentials().into()),
        };
        self.inner.limiter.succeeded(&user.username);
        Ok(self.inner.new_session(&user, now)?)
    }

    /// The user and session of a bearer token. `Unauthenticated` when the token is unknown
    /// or expired, or its user is disabled or gone.
    pub fn authenticate(&self, token: &str, now: Timestamp) -> Result<(User, Session), Error> {
        if token.len() != TOKEN_CHARS {
            return Err(invalid_session());
        }
        let key = session_key(token);
        let sessions = &self.inner.sessions;
        let Some(record) = sessions.get::<SessionRecord>(&key)? else {
            return Err(invalid_session());
        };
        let session = record.into_session()?;
        if now >= session.expires {
            sessions.remove(&key)?;
            return Err(invalid_session());
        }
        let user = match self.get(session.user) {
            Ok(u) => u,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                sessions.remove(&key)?;
                return Err(invalid_session());
            }
            Err(e) => return Err(e),
        };
        if user.disabled {
            return Err(invalid_session());
        }
        Ok((user, session))
    }

    /// Ends the session of a token; a token that names none is fine.
    pub async fn logout(&self, token: &str) -> Result<(), Error> {
        let (inner, key) = (self.inner.clone(), session_key(token));
        blocking(move || {
            if inner.sessions.remove(key)? {
                inner.store.flush()?;
            }
            Ok(())
        })
        .await
    }

    /// Removes expired sessions and returns how many; for the lead's periodic sweep.
    /// Blocking: it reads every session.
    pub fn purge_expired(&self, now: Timestamp) -> Result<usize, Error> {
        let mut batch = Batch::default();
        let mut n = 0;
        for kv in self.inner.sessions.scan::<SessionRecord>(b"") {
            let (key, record) = kv?;
            if now >= record.into_session()?.expires {
                batch.remove(key);
                n += 1;
            }
        }
        self.inner.sessions.apply(batch)?;
        Ok(n)
    }
}

impl Inner {
    fn lock_writes(&self) -> std::sync::MutexGuard<'_, ()> {
        // It guards no data, so a panic elsewhere leaves nothing inconsistent.
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, id: UserId) -> Result<User, Error> {
        self.users
            .get::<UserRecord>(id_key(id))?
            .ok_or_else(|| err!(NotFound, "user {id} not found"))?
            .into_user()
    }

    fn list(&self) -> Result<Vec<User>, Error> {
        self.users
            .scan::<UserRecord>(b"id/")
            .map(|kv| kv?.1.into_user())
            .collect()
    }

    /// Stores a new user and its username together. Blocking.
    fn insert(&self, user: User) -> Result<User, Error> {
        let _writing = self.lock_writes();
        if self
            .users
            .get::<UserId>(name_key(&user.username))?
            .is_some()
        {
            bail!(AlreadyExists, "user {:?} exists", user.username);
        }
        let mut batch = Batch::default();
        batch.put(name_key(&user.username), &user.id)?;
        batch.put(id_key(user.id), &UserRecord::new(&user))?;
        self.users.apply(batch)?;
        self.store.flush()?;
        Ok(user)
    }

    /// Refuses a change of `old` into `new` (`None`: deletion) that would leave no enabled
    /// national admin of the whole republic. Call with the write lock held.
    fn keep_an_admin(&self, old: &User, new: Option<&User>) -> Result<(), Error> {
        if !is_root_admin(old) || new.is_some_and(is_root_admin) {
            return Ok(());
        }
        let others = self
            .list()?
            .iter()
            .any(|u| u.id != old.id && is_root_admin(u));
        if !others {
            bail!(
                FailedPrecondition,
                "user {:?} is the last enabled national admin of the whole republic",
                old.username
            );
        }
        Ok(())
    }

    fn end_sessions_of(&self, id: UserId) -> Result<(), Error> {
        let mut batch = Batch::default();
        for kv in self.sessions.scan::<SessionRecord>(b"") {
            let (key, record) = kv?;
            if record.user == id {
                batch.remove(key);
            }
        }
        self.sessions.apply(batch)
    }

    fn new_session(&self, user: &User, now: Timestamp) -> Result<(String, Session), Error> {
        let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let expires = now
            .checked_add(self.session_ttl)
            .map_err(|e| err!(Internal, "session expiry: {e}"))?;
        let session = Session {
            user: user.id,
            created: now,
            expires,
        };
        let record = SessionRecord {
            user: user.id,
            created: now.to_string(),
            expires: expires.to_string(),
        };
        self.sessions.put(session_key(&token), &record)?;
        Ok((token, session))
    }
}

/// Creates the first administrator: a national admin of the whole republic (`000000000`)
/// with a random password of [`BOOTSTRAP_PASSWORD_CHARS`] letters and digits, which it
/// returns. `AlreadyExists` if the username is taken.
pub async fn bootstrap_admin(
    users: &Users,
    username: &str,
    now: Timestamp,
) -> Result<String, Error> {
    let password = password::generate(BOOTSTRAP_PASSWORD_CHARS);
    users
        .create(
            username,
            &password,
            Role::NationalAdmin,
            vec![republic()],
            now,
        )
        .await?;
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    const TTL: Duration = Duration::from_secs(3600);
    const PW: &str = "a long enough password";

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn r(s: &str) -> RegionCode {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Opens the store in `dir`. A store this process just dropped may still be locked for a
    /// moment, until sled's flusher thread lets go of it: the open is retried until then.
    fn open(dir: &tempfile::TempDir) -> Users {
        let path = dir.path().join("store");
        let mut tries = 0;
        let store = loop {
            match Store::open(&path) {
                Ok(store) => break store,
                Err(e) if tries < 100 && e.to_string().contains("could not acquire lock") => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("opening the store: {e}"),
            }
        };
        Users::with_hasher(&store, TTL, password::tests::cheap()).unwrap()
    }

    fn argon2_runs(users: &Users) -> u64 {
        users.inner.hasher.runs.load(Ordering::Relaxed)
    }

    fn kind<T>(r: Result<T, Error>) -> ErrorKind {
        r.err().expect("an error").kind()
    }

    async fn login(
        users: &Users,
        name: &str,
        password: &str,
        now: Timestamp,
    ) -> Result<(String, Session), LoginError> {
        users.login(name, password, ip("192.0.2.1"), now).await
    }

    #[tokio::test]
    async fn create_read_update_delete() {
        let dir = tempfile::tempdir().unwrap();
        let users = open(&dir);
        let scopes = vec![r("750000000"), r("710000000"), r("750000000")];
        let a = users
            .create("Alice.Smith-2_x", PW, Role::Operator, scopes, t(0))
            .await
            .unwrap();
        assert_eq!(a.username, "alice.smith-2_x");
        assert_eq!(
            a.scopes,
            [r("710000000"), r("750000000")],
            "sorted, deduplicated"
        );
        assert_eq!((a.created, a.disabled), (t(0), false));
        assert!(!format!("{a:?}").contains("argon2"), "no hash in Debug");
        assert_eq!(users.get(a.id).unwrap(), a);
        assert_eq!(users.by_username("ALICE.SMITH-2_X").unwrap(), a);
        let b = users
            .create("bob", PW, Role::Investigator, vec![r("110000000")], t(1))
            .await
            .unwrap();
        assert_eq!(users.list().unwrap(), [a.clone(), b.clone()]);

        let change = UserUpdate {
            role: Some(Role::RegionalAdmin),
            scopes: Some(vec![r("751110000")]),
            disabled: Some(true),
            ..Default::default()
        };
        let a2 = users.update(a.id, change).await.unwrap();
        assert_eq!(
            (a2.role, a2.scopes.as_slice(), a2.disabled),
            (Role::RegionalAdmin, &[r("751110000")][..], true)
        );
        assert_eq!(a2.password_hash, a.password_hash, "unchanged when left out");
        assert_eq!(users.get(a.id).unwrap(), a2);

        users.delete(a.id).await.unwrap();
        assert_eq!(kind(users.get(a.id)), ErrorKind::NotFound);
        assert_eq!(
            kind(users.by_username("alice.smith-2_x")),
            ErrorKind::NotFound
        );
        assert_eq!(kind(users.delete(a.id).await), ErrorKind::NotFound);
        let missing = UserUpdate::default();
        assert_eq!(kind(users.update(a.id, missing).await), ErrorKind::NotFound);
        assert_eq!(users.list().unwrap(), std::slice::from_ref(&b));
        // The name is free again; everything survives a reopening.
        let a3 = users
            .create(
                "alice.smith-2_x",
                PW,
                Role::Operator,
                vec![r("750000000")],
                t(2),
            )
            .await
            .unwrap();
        assert_ne!(a3.id, a.id);
        drop(users);
        let users = open(&dir);
        assert_eq!(users.list().unwrap(), [b, a3]);
    }

    #[tokio::test]
    async fn refusals_on_create_and_update() {
        let dir = tempfile::tempdir().unwrap();
        let users = open(&dir);
        let scopes = || vec![r("750000000")];
        let a = users
            .create("alice", PW, Role::Operator, scopes(), t(0))
            .await
            .unwrap();
        let cases: [(&str, &str, Vec<RegionCode>, ErrorKind); 8] = [
            ("carol", "11 chars...", scopes(), ErrorKind::InvalidArgument),
            (
                "carol",
                &"x".repeat(257),
                scopes(),
                ErrorKind::InvalidArgument,
            ),
            ("carol", PW, vec![], ErrorKind::InvalidArgument),
            ("ab", PW, scopes(), ErrorKind::InvalidArgument),
            ("car ol", PW, scopes(), ErrorKind::InvalidArgument),
            ("кэрол", PW, scopes(), ErrorKind::InvalidArgument),
            (&"c".repeat(65), PW, scopes(), ErrorKind::InvalidArgument),
            ("ALICE", PW, scopes(), ErrorKind::AlreadyExists),
        ];
        for (name, password, scopes, expected) in cases {
            let res = users.create(name, password, Role::Operator, scopes, t(1));
            assert_eq!(kind(res.await), expected, "{name:?}");
        }
        users
            .create(
                &"c".repeat(64),
                &"x".repeat(256),
                Role::Operator,
                scopes(),
                t(1),
            )
            .await
            .unwrap();
        let short = UserUpdate {
            password: Some("too short".into()),
            ..Default::default()
        };
        assert_eq!(
            kind(users.update(a.id, short).await),
            ErrorKind::InvalidArgument
        );
        let no_scopes = UserUpdate {
            scopes: Some(vec![]),
            ..Default::default()
        };
        assert_eq!(
            kind(users.update(a.id, no_scopes).await),
            ErrorKind::InvalidArgument
        );
        assert_eq!(users.get(a.id).unwrap(), a, "unchanged");
    }

    #[tokio::test]
    async fn concurrent_creates_of_one_name_make_one_user() {
        let dir = tempfile::tempdir().unwrap();
        let users = open(&dir);
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let users = users.clone();
                let name = if i % 2 == 0 { "dave" } else { "DAVE" };
                tokio::spawn(async move {
                    users
                        .create(name, PW, Role::Operator, vec![r("750000000")], t(0))
                        .await
                })
            })
            .collect();
        let mut created = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => created += 1,
                Err(e) => assert_eq!(e.kind(), ErrorKind::AlreadyExists),
            }
        }
        assert_eq!(created, 1);
        assert_eq!(users.list().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn production_hashes_are_owasp_argon2id() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let users = Users::open(&store, TTL).unwrap();
        let a = users
            .create("alice", PW, Role::Operator, vec![r("750000000")], t(0))
            .await
            .unwrap();
        // The dummy for unknown usernames costs the same.
        let prefix = "$argon2id$v=19$m=19456,t=2,p=1$";
        assert!(users.inner.hasher.dummy.starts_with(prefix));
        let rest = a
            .password_hash
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{}", a.password_hash));
        let (salt, hash) = rest.split_once('$').unwrap();
        // 16 bytes of salt and 32 of hash, in unpadded base64.
        assert_eq!((salt.len(), hash.len()), (22, 43));
        login(&users, "alice", PW, t(0)).await.unwrap();
    }

    #[tokio::test]
    async fn login_authenticate_and_failures_that_look_alike() {
        let dir = tempfile::tempdir().unwrap();
        let users = open(&dir);
        let a = users
            .create("alice", PW, Role::Investigator, vec![r("750000000")], t(0))
            .await
            .unwrap();
        let (token, session) = login(&users, "Alice", PW, t(10)).await.unwrap();
        assert_eq!(token.len(), TOKEN_CHARS);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(
            session,
            Session {
                user: a.id,
                created: t(10),
                expires: t(3610)
            }
        );
        assert_eq!(
            users.authenticate(&token, t(11)).unwrap(),
            (a.clone(), session)
        );
        let (token2, _) = login(&users, "alice", PW, t(10)).await.unwrap();
        assert_ne!(token, token2);

        // Only the token's hash is stored.
        let stored: Vec<Vec<u8>> = users
            .inner
            .sessions
            .scan::<SessionRecord>(b"")
            .map(|kv| kv.unwrap().0)
            .collect();
        assert!(stored.contains(&session_key(&token)));
        assert!(!stored.iter().any(|k| k == token.as_bytes()));

        let disabled = users
            .create("bob", PW, Role::Operator, vec![r("750000000")], t(0))
            .await
            .unwrap();
        let off = UserUpdate {
            disabled: Some(true),
            ..Default::default()
        };
        users.update(disabled.id, off).await.unwrap();
        let mut failures = Vec::new();
        for (name, password) in [
            ("alice", "a wrong password!"),
            ("nobody", PW),
            ("bob", PW),
            ("no such name at all, not even a valid one", PW),
        ] {
            let before = argon2_runs(&users);
            let e = login(&users, name, password, t(20)).await.unwrap_err();
            assert_eq!(argon2_runs(&users) - before, 1, "{name}: one verification");
            assert_eq!(e.retry_after_secs, None);
            failures.push((e.error.kind(), e.error.to_string()));
        }
        for f in &failures {
            assert_eq!(
                f,
                &(
                    ErrorKind::Unauthenticated,
                    "wrong username or password".to_owned()
                )
            );
        }
    }

    #[tokio::test]
    async fn sessions_expire_end_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let users = open(&dir);
        users
            .create("alice", PW, Role::Operator, vec![r("750000000")], t(0))
            .await
            .unwrap();
        let (token, _) = login(&users, "alice", PW, t(0)).await.unwrap();
        users.authenticate(&token, t(3599)).unwrap();
        assert_eq!(
            kind(users.authenticate(&token, t(3600))),
            ErrorKind::Unauthenticated
        );
        // Found expired, it was removed: earlier clocks do not bring it back.
        assert_eq!(
            kind(users.authenticate(&token, t(1))),
            ErrorKind::Unauthenticated
        );

        let (token, _) = login(&users, "alice", PW, t(0)).await.unwrap();
        users.logout(&token).await.unwrap();
        assert_eq!(
            kind(users.authenticate(&token, t(1))),
            ErrorKind::Unauthenticated
        );
        users.logout(&token).await.unwrap();

        for bad in ["", "x", &"A".repeat(TOKEN_CHARS), &"A".repeat(10_000)] {
            assert_eq!(
                kind(users.authenticate(bad, t(1))),
                ErrorKind::Unauthenticated
            );
        }

        let (old, _) = login(&users, "alice", PW, t(0)).await.unwrap();
        let (newer, _) = login(&users, "alice", PW, t(100)).await.unwrap();
        assert_eq!(users.purge_expired(t(3599)).unwrap(), 0);
        assert_eq!(users.purge_expired(t(3600)).unwrap(), 1);
        assert_eq!(users.purge_expired(t(3600)).unwrap(), 0);
        assert_eq!(
            kind(users.authenticate(&old, t(0))),
            ErrorKind::Unauthenticated
        );
        users.authenticate(&newer, t(3600)).unwrap();
    }

    #[tokio::test]
    async fn disabling_deleting_and_new_passwords_end_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let users = open(&dir);
        let a = users
            .create("alice", PW, Role::Operator, vec![r("750000000")], t(0))
            .await
            .unwrap();
        let b = users
            .create("bob", PW, Role::Operator, vec![r("750000000")], t(0))
            .await
            .unwrap();
        let (ta, _) = login(&users, "alice", PW, t(0)).await.unwrap();
        let (tb, _) = login(&users, "bob", PW, t(0)).await.unwrap();

        let set_disabled = |d| UserUpdate {
            disabled: Some(d),
            ..Default::default()
        };
        users.update(a.id, set_disabled(true)).await.unwrap();
        assert_eq!(
            kind(users.authenticate(&ta, t(1))),
            ErrorKind::Unauthenticated
        );
        users.update(a.id, set_disabled(false)).await.unwrap();
        assert_eq!(
            kind(users.authenticate(&ta, t(1))),
            ErrorKind::Unauthenticated,
            "enabling again does not revive the session"
        );
        users.authenticate(&tb, t(1)).unwrap();

        let (ta, _) = login(&users, "alice", PW, t(2)).await.unwrap();
        let new_password = UserUpdate {
            password: Some("another long password".into()),
            ..Default::default()
        };
        users.update(a.id, new_password).await.unwrap();
        assert_eq!(
            kind(users.authenticate(&ta, t(3))),
            ErrorKind::Unauthenticated
        );
        assert!(login(&users, "alice", PW, t(3)).await.is_err());
        login(&users, "alice", "another long password", t(3))
            .await
            .unwrap();

        users.delete(b.id).await.unwrap();
        assert_eq!(
            kind(users.authenticate(&tb, t(4))),
            ErrorKind::Unauthenticated
        );
        // A role change takes effect on the next request of a live session.
        let (ta, _) = login(&users, "alice", "another long password", t(5))
            .await
            .unwrap();
        let promote = UserUpdate {
            role: Some(Role::Investigator),
            ..Default::default()
        };
        users.update(a.id, promote).await.unwrap();
        assert_eq!(
            users.authenticate(&ta, t(6)).unwrap().0.role,
            Role::Investigator
        );
    }

    #[tokio::test]
    async fn sixth_failure_for_a_username_is_refused_without_argon2() {
        let dir = tempfile::tempdir().unwrap();
        let users = open(&dir);
        users
            .create("alice", PW, Role::Operator, vec![r("750000000")], t(0))
            .await
            .unwrap();
        for i in 0..5 {
            let client = ip(&format!("192.0.2.{i}"));
            let e = users
                .login("alice", "wrong password!", client, t(i))
                .await
                .unwrap_err();
            assert_eq!(e.error.kind(), ErrorKind::Unauthenticated);
        }
        let before = argon2_runs(&users);
        // Refused even with the right password, and in another case.
        let e = users
            .login("ALICE", PW, ip("198.51.100.1"), t(5))
            .await
            .unwrap_err();
        assert_eq!(e.error.kind(), ErrorKind::ResourceExhausted);
        assert_eq!(e.retry_after_secs, Some(55));
        assert_eq!(argon2_runs(&users), before, "no argon2 when refused");
        // Other usernames are unaffected.
        assert_eq!(
            login(&users, "bob", PW, t(5))
                .await
                .unwrap_err()
                .error
                .kind(),
            ErrorKind::Unauthenticated
        );
        // The first failure leaves the window at t=60.
        assert!(login(&users, "alice", PW, t(59)).await.is_err());
        login(&users, "alice", PW, t(60)).await.unwrap();
        // Success cleared the failures: five more are allowed.
        for _ in 0..5 {
            let e = login(&users, "alice", "wrong password!", t(61))
                .await
                .unwrap_err();
            assert_eq!(e.error.kind(), ErrorKind::Unauthenticated);
        }
        let e = login(&users, "alice", PW, t(61)).await.unwrap_err();
        assert_eq!(e.retry_after_secs, Some(60));
    }

    #[tokio::test]
    async fn thirty_first_attempt_from_a_client_is_refused_without_argon2() {
        let dir = tempfile::tempdir().unwrap();
        let users = open(&dir);
        users
            .create("alice", PW, Role::Operator, vec![r("750000000")], t(0))
            .await
            .unwrap();
        let client = ip("203.0.113.9");
        for i in 0..30 {
            let e = users
                .login(&format!("guess{i}"), PW, client, t(0))
                .await
                .unwrap_err();
            assert_eq!(e.error.kind(), ErrorKind::Unauthenticated);
        }
        let before = argon2_runs(&users);
        let e = users.login("alice", PW, client, t(30)).await.unwrap_err();
        assert_eq!(
            (e.error.kind(), e.retry_after_secs),
            (ErrorKind::ResourceExhausted, Some(30))
        );
        assert_eq!(argon2_runs(&users), before);
        users
            .login("alice", PW, ip("203.0.113.10"), t(30))
            .await
            .unwrap();
        users.login("alice", PW, client, t(60)).await.unwrap();
    }

    #[tokio::test]
    async fn bootstrap_and_the_last_admin() {
        let dir = tempfile::tempdir().unwrap();
        let users = open(&dir);
        let password = bootstrap_admin(&users, "root", t(0)).await.unwrap();
        assert!(password.len() >= 20, "{password}");
        let (token, _) = login(&users, "root", &password, t(1)).await.unwrap();
        let (root, _) = users.authenticate(&token, t(1)).unwrap();
        assert_eq!(
            (root.role, root.scopes.as_slice()),
            (Role::NationalAdmin, &[republic()][..])
        );
        assert_eq!(
            kind(bootstrap_admin(&users, "ROOT", t(2)).await),
            ErrorKind::AlreadyExists
        );
        assert_ne!(
            bootstrap_admin(&users, "root2", t(2)).await.unwrap(),
            password
        );
        let root2 = users.by_username("root2").unwrap();
        users.delete(root2.id).await.unwrap();

        let refused = [
            UserUpdate {
                disabled: Some(true),
                ..Default::default()
            },
            UserUpdate {
                role: Some(Role::RegionalAdmin),
                ..Default::default()
            },
            UserUpdate {
                scopes: Some(vec![r("750000000")]),
                ..Default::default()
            },
        ];
        for change in refused {
            assert_eq!(
                kind(users.update(root.id, change).await),
                ErrorKind::FailedPrecondition
            );
        }
        assert_eq!(
            kind(users.delete(root.id).await),
            ErrorKind::FailedPrecondition
        );
        let widened = UserUpdate {
            scopes: Some(vec![republic(), r("750000000")]),
            ..Default::default()
        };
        users.update(root.id, widened).await.unwrap();

        // With another root admin, the first may go.
        users
            .create("second", PW, Role::NationalAdmin, vec![republic()], t(3))
            .await
            .unwrap();
        users.delete(root.id).await.unwrap();
    }
}
