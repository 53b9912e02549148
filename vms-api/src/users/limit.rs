//! The login rate limit, in memory: at most 5 failed attempts per username and 30 attempts
//! per client in any sliding 60 s window. An attempt counts when it is admitted, before its
//! password is checked, so concurrent guesses cannot slip past the limit; a successful login
//! then clears its username's count (the client's count stays). A refused attempt counts for
//! nothing and costs no password hash. Clients are keyed by IPv4 address or IPv6 /64, the
//! block one host usually holds. Each map keeps at most 100,000 keys: when full, it drops the
//! keys with no attempt left in the window, then the least recently active tenth.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};

use jiff::{SignedDuration, Timestamp};

/// The sliding window both limits count over.
pub const WINDOW: SignedDuration = SignedDuration::from_secs(60);
/// Failed attempts a username may have in the window; the next one is refused.
pub const MAX_FAILURES_PER_USERNAME: usize = 5;
/// Attempts a client may make in the window; the next one is refused.
pub const MAX_ATTEMPTS_PER_CLIENT: usize = 30;
/// Keys each map holds at most.
pub const MAX_KEYS: usize = 100_000;

pub(crate) struct LoginLimiter {
    state: Mutex<State>,
}

struct State {
    usernames: Window<String>,
    clients: Window<IpAddr>,
}

/// Attempt times per key, at most `limit` of them in the window.
struct Window<K> {
    limit: usize,
    cap: usize,
    attempts: HashMap<K, Vec<Timestamp>>,
}

fn in_window(t: Timestamp, now: Timestamp) -> bool {
    // An attempt stamped after `now` (a clock step back, or a concurrent caller that read the
    // clock later) still counts.
    now.duration_since(t) < WINDOW
}

/// Whole seconds, rounded up, at least 1: what a `Retry-After` header carries.
fn ceil_secs(d: SignedDuration) -> u64 {
    let secs = d.as_secs() + i64::from(d.subsec_nanos() > 0);
    u64::try_from(secs).unwrap_or(0).max(1)
}

impl<K: Eq + Hash + Clone> Window<K> {
    fn new(limit: usize, cap: usize) -> Self {
        Window {
            limit,
            cap,
            attempts: HashMap::new(),
        }
    }

    /// Seconds until `key` may try again, when it is at its limit now.
    fn retry_after<Q>(&mut self, key: &Q, now: Timestamp) -> Option<u64>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let times = self.attempts.get_mut(key)?;
        times.retain(|&t| in_window(t, now));
        if times.len() < self.limit {
            return None;
        }
        let oldest = times.iter().min()?;
        Some(ceil_secs(
            oldest.checked_add(WINDOW).ok()?.duration_since(now),
        ))
    }

    fn record(&mut self, key: K, now: Timestamp) {
        if self.attempts.len() >= self.cap && !self.attempts.contains_key(&key) {
            self.make_room(now);
        }
        self.attempts.entry(key).or_default().push(now);
    }

    fn clear<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.attempts.remove(key);
    }

    fn make_room(&mut self, now: Timestamp) {
        self.attempts.retain(|_, times| {
            times.retain(|&t| in_window(t, now));
            !times.is_empty()
        });
        if self.attempts.len() < self.cap {
            return;
        }
        // Full of active keys (a flood): forget the least recently active tenth at once, so
        // that the next inserts do not each pay for a sweep. (Ties at the cut go too.)
        let mut latest: Vec<Timestamp> = self
            .attempts
            .values()
            .filter_map(|times| times.iter().max().copied())
            .collect();
        let drop = (self.cap / 10).max(1).min(latest.len()) - 1;
        let (_, &mut cut, _) = latest.select_nth_unstable(drop);
        self.attempts
            .retain(|_, times| times.iter().any(|&t| t > cut));
    }
}

/// The key a client is counted under: its IPv4 address, or its IPv6 /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & (u128::MAX << 64))),
        },
    }
}

impl LoginLimiter {
    pub(crate) fn new() -> Self {
        LoginLimiter {
            state: Mutex::new(State {
                usernames: Window::new(MAX_FAILURES_PER_USERNAME, MAX_KEYS),
                clients: Window::new(MAX_ATTEMPTS_PER_CLIENT, MAX_KEYS),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The maps stay consistent whatever panicked while they were held.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits one login attempt and counts it against the client and, when given, the
    /// username (as a failure until [`LoginLimiter::succeeded`]); or refuses it, giving the
    /// seconds until it would be admitted.
    pub(crate) fn admit(
        &self,
        username: Option<&str>,
        client: IpAddr,
        now: Timestamp,
    ) -> Result<(), u64> {
        let client = client_key(client);
        let mut s = self.state();
        let by_client = s.clients.retry_after(&client, now);
        let by_username = username.and_then(|u| s.usernames.retry_after(u, now));
        if let Some(wait) = by_client.max(by_username) {
            return Err(wait);
        }
        s.clients.record(client, now);
        if let Some(u) = username {
            s.usernames.record(u.to_owned(), now);
        }
        Ok(())
    }

    /// A login as `username` succeeded: its failures are forgiven.
    pub(crate) fn succeeded(&self, username: &str) {
        self.state().usernames.clear(username);
    }

    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        let s = self.state();
        (s.usernames.attempts.len(), s.clients.attempts.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sixth_failure_of_a_username_is_refused_until_the_window_slides() {
        let l = LoginLimiter::new();
        for i in 0..5 {
            // From different clients: the username's own limit is what bites.
            l.admit(Some("alice"), ip(&format!("10.0.0.{i}")), t(i))
                .unwrap();
        }
        assert_eq!(l.admit(Some("alice"), ip("10.0.1.1"), t(5)), Err(55));
        assert_eq!(l.admit(Some("alice"), ip("10.0.1.1"), t(59)), Err(1));
        assert_eq!(
            l.admit(
                Some("alice"),
                ip("10.0.1.1"),
                Timestamp::from_millisecond(1_700_000_059_500).unwrap()
            ),
            Err(1),
            "rounded up"
        );
        l.admit(Some("bob"), ip("10.0.1.1"), t(5)).unwrap();
        // The first failure leaves the window at t=60: one more attempt, then refused again
        // until the second leaves at t=61.
        l.admit(Some("alice"), ip("10.0.1.1"), t(60)).unwrap();
        assert_eq!(l.admit(Some("alice"), ip("10.0.1.1"), t(60)), Err(1));
        l.admit(Some("alice"), ip("10.0.1.1"), t(61)).unwrap();
    }

    #[test]
    fn success_forgives_the_username_but_not_the_client() {
        let l = LoginLimiter::new();
        for i in 0..5 {
            l.admit(Some("alice"), ip("10.0.0.1"), t(i)).unwrap();
        }
        l.succeeded("alice");
        for i in 0..5 {
            l.admit(Some("alice"), ip("10.0.0.1"), t(5 + i)).unwrap();
        }
        assert!(l.admit(Some("alice"), ip("10.0.0.1"), t(10)).is_err());
        // Ten attempts from 10.0.0.1 so far, the refused one not counted.
        for i in 0..20 {
            l.admit(Some(&format!("u{i}")), ip("10.0.0.1"), t(11))
                .unwrap();
        }
        assert_eq!(l.admit(Some("carol"), ip("10.0.0.1"), t(11)), Err(49));
    }

    #[test]
    fn thirty_first_attempt_of_a_client_is_refused() {
        let l = LoginLimiter::new();
        for i in 0..30 {
            l.admit(Some(&format!("user{i}")), ip("192.0.2.7"), t(i / 2))
                .unwrap();
        }
        assert_eq!(l.admit(Some("user99"), ip("192.0.2.7"), t(15)), Err(45));
        assert_eq!(
            l.admit(None, ip("192.0.2.7"), t(15)),
            Err(45),
            "with no username too"
        );
        l.admit(Some("user99"), ip("192.0.2.8"), t(15)).unwrap();
        // Attempts at t=0 (two of them) leave the window at t=60.
        l.admit(Some("user99"), ip("192.0.2.7"), t(60)).unwrap();
        l.admit(Some("user98"), ip("192.0.2.7"), t(60)).unwrap();
        assert_eq!(l.admit(Some("user97"), ip("192.0.2.7"), t(60)), Err(1));
    }

    #[test]
    fn ipv6_counts_by_slash_64_and_mapped_ipv4_as_ipv4() {
        let l = LoginLimiter::new();
        for i in 0..30u32 {
            l.admit(None, ip(&format!("2001:db8:1:2::{i:x}")), t(0))
                .unwrap();
        }
        assert!(l.admit(None, ip("2001:db8:1:2:ffff::1"), t(0)).is_err());
        l.admit(None, ip("2001:db8:1:3::1"), t(0)).unwrap();
        for _ in 0..30 {
            l.admit(None, ip("::ffff:198.51.100.1"), t(0)).unwrap();
        }
        assert!(l.admit(None, ip("198.51.100.1"), t(0)).is_err());
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_under_the_cap() {
        let l = LoginLimiter::new();
        let mut largest = (0, 0);
        for i in 0..200_000u32 {
            let name = format!("flood{i}");
            let client = IpAddr::V4((0x0a00_0000 + i).into());
            l.admit(Some(&name), client, t(i64::from(i / 10_000)))
                .unwrap();
            let (u, c) = l.sizes();
            largest = (largest.0.max(u), largest.1.max(c));
        }
        assert_eq!(largest, (MAX_KEYS, MAX_KEYS));
        // The latest keys survived the evictions and are still counted.
        let s = l.state();
        assert_eq!(
            s.usernames.attempts.get("flood199999").map(Vec::len),
            Some(1)
        );
        assert!(!s.usernames.attempts.contains_key("flood0"));
    }

    #[test]
    fn quiet_keys_go_before_active_ones() {
        let mut w: Window<u32> = Window::new(5, 10);
        for k in 0..10 {
            w.record(k, t(if k < 5 { 0 } else { 100 }));
        }
        w.record(10, t(120));
        // Keys 0..5 had nothing left in the window at t=120 and went; 5..10 stayed.
        let mut keys: Vec<u32> = w.attempts.keys().copied().collect();
        keys.sort_unstable();
        assert_eq!(keys, [5, 6, 7, 8, 9, 10]);
    }
}
