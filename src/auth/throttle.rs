//! Brute-force throttling for sign-in (OWASP ASVS V2.2.1): per account, per source IP, and a
//! plain request rate limit, all kept in the fleet's shared counters (Redis when configured).
//!
//! - Account: after `threshold` consecutive failures the account is locked for `base`, doubling
//!   with each further failure up to `max`. A correct password after the lock ends works, and a
//!   success clears the count. Unknown emails are counted the same way, so locks reveal nothing.
//! - Device: a browser holding a signed device cookie from an earlier sign-in to the account is
//!   counted on its own, so failures from elsewhere never lock its owner out.
//! - IP: more than `ip_limit` failures from one address within `ip_window` are refused with 429.
//! - Password and second-factor failures use separate counters (`Factor`).

use crate::clock::Timestamp;
use crate::fleet::Fleet;

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub threshold: i64,
    pub base: i64,
    pub max: i64,
    pub ip_limit: i64,
    pub ip_window: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    Password,
    SecondFactor,
}

impl Factor {
    fn tag(self) -> &'static str {
        match self {
            Factor::Password => "pw",
            Factor::SecondFactor => "mfa",
        }
    }
}

/// Whether an attempt may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// The account (or this device's view of it) is locked for this many seconds.
    Locked(i64),
    /// This address has failed too often; retry after this many seconds.
    Limited(i64),
}

/// Who is attempting: the account key (normalised email) and, if any, a trusted device id.
pub struct Attempt<'a> {
    pub account: &'a str,
    pub device: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub factor: Factor,
}

impl Attempt<'_> {
    fn scope(&self) -> String {
        match self.device {
            Some(d) => format!("{}:dev:{d}:{}", self.factor.tag(), self.account),
            None => format!("{}:acct:{}", self.factor.tag(), self.account),
        }
    }
}

/// How long the lock lasts after `failures` consecutive failures.
pub fn lock_seconds(p: &ThrottlePolicy, failures: i64) -> i64 {
    if failures < p.threshold {
        return 0;
    }
    let doublings = (failures - p.threshold).min(30) as u32;
    p.base.saturating_mul(1i64 << doublings).min(p.max)
}

/// Whether `a` may be tried now. The lock and the address's failures are read in one round
/// trip; the address's end of limit only when it is over.
pub async fn check(fleet: &Fleet, p: &ThrottlePolicy, a: &Attempt<'_>, now: Timestamp) -> Gate {
    let mut keys = vec![format!("lock:{}", a.scope())];
    if let Some(ip) = a.ip {
        keys.push(format!("fail:ip:{ip}"));
    }
    let read = fleet.get_many(&keys, now).await;
    let (until, ip_failures) = (
        read.first().copied().unwrap_or(0),
        read.get(1).copied().unwrap_or(0),
    );
    if let Some(ip) = a.ip
        && ip_failures >= p.ip_limit
    {
        let until = fleet.get(&format!("fail:ip:{ip}:until"), now).await;
        return Gate::Limited((until - now).max(1));
    }
    if until > now {
        Gate::Locked(until - now)
    } else {
        Gate::Open
    }
}

/// Records a failure; returns the lock that now applies (0 = none).
pub async fn failed(fleet: &Fleet, p: &ThrottlePolicy, a: &Attempt<'_>, now: Timestamp) -> i64 {
    if let Some(ip) = a.ip {
        let key = format!("fail:ip:{ip}");
        let (count, left) = fleet.hit(&key, p.ip_window, now).await;
        if count == p.ip_limit {
            fleet
                .put(&format!("{key}:until"), now + left, left, now)
                .await;
        }
    }
    let scope = a.scope();
    // Failures are remembered for a day of quiet, so slow guessing still adds up.
    let (failures, _) = fleet.hit(&format!("fail:{scope}"), 86_400, now).await;
    let lock = lock_seconds(p, failures);
    if lock > 0 {
        fleet
            .put(&format!("lock:{scope}"), now + lock, lock, now)
            .await;
    }
    lock
}

pub async fn succeeded(fleet: &Fleet, a: &Attempt<'_>) {
    let scope = a.scope();
    fleet
        .clear(&[format!("fail:{scope}"), format!("lock:{scope}")])
        .await;
}

/// Lifts the account-wide password lock (not the per-device ones): a completed password reset
/// proves the mailbox, and the owner should not stay locked out by an attacker's guesses.
pub async fn clear_account(fleet: &Fleet, account: &str) {
    let scope = format!("{}:acct:{account}", Factor::Password.tag());
    fleet
        .clear(&[format!("fail:{scope}"), format!("lock:{scope}")])
        .await;
}

/// The account-wide attempts of one user, as the sign-in counts them: the password by the
/// normalised email, the second step by the user id (see `auth::mfa::second_step::Keys`).
fn account_attempts<'a>(email: &'a str, mfa_account: &'a str) -> [Attempt<'a>; 2] {
    let attempt = |account, factor| Attempt {
        account,
        device: None,
        ip: None,
        factor,
    };
    [
        attempt(email, Factor::Password),
        attempt(mfa_account, Factor::SecondFactor),
    ]
}

/// The key the second step counts a user's failures under.
fn second_factor_account(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// Until when the user's account is locked out, for the password or the second step (the
/// account-wide locks; a lock of one device's own view is not the account's), if it is at `now`.
pub async fn account_locked_until(
    fleet: &Fleet,
    email: &str,
    user_id: &str,
    now: Timestamp,
) -> Option<Timestamp> {
    let mfa_account = second_factor_account(user_id);
    let mut until = 0;
    for attempt in account_attempts(email, &mfa_account) {
        until = until.max(fleet.get(&format!("lock:{}", attempt.scope()), now).await);
    }
    (until > now).then_some(until)
}

/// An operator's unlock: clears the user's account-wide failure counts and locks, for the
/// password and the second step, so the next attempt is checked as if none had failed.
pub async fn clear_account_locks(fleet: &Fleet, email: &str, user_id: &str) {
    let mfa_account = second_factor_account(user_id);
    let mut keys = Vec::new();
    for attempt in account_attempts(email, &mfa_account) {
        let scope = attempt.scope();
        keys.push(format!("fail:{scope}"));
        keys.push(format!("lock:{scope}"));
    }
    fleet.clear(&keys).await;
}

/// A plain request-rate limit: at most `limit` per `window` seconds per key; returns the
/// seconds to wait when over it.
pub async fn rate_limited(
    fleet: &Fleet,
    key: &str,
    limit: i64,
    window: i64,
    now: Timestamp,
) -> Option<i64> {
    if limit <= 0 {
        return None;
    }
    let (count, left) = fleet.hit(&format!("rate:{key}"), window, now).await;
    (count > limit).then_some(left.max(1))
}

/// Sign-in attempts per minute from one client address (its limit key; `None` when unknown),
/// counted before any password is checked. Returns the seconds to wait when over `limit`.
pub async fn signin_rate_limited(
    fleet: &Fleet,
    ip_key: Option<&str>,
    limit: i64,
    now: Timestamp,
) -> Option<i64> {
    let key = format!("signin:{}", ip_key.unwrap_or("-"));
    rate_limited(fleet, &key, limit, 60, now).await
}

/// Ceremonies (a pending second step, a passkey's challenge) begun per minute from one client
/// address, on a key apart from sign-in attempts: each stores a row, so they are not free to
/// begin in bulk. Returns the seconds to wait when over `limit`.
pub async fn ceremony_rate_limited(
    fleet: &Fleet,
    ip_key: Option<&str>,
    limit: i64,
    now: Timestamp,
) -> Option<i64> {
    let key = format!("ceremony:{}", ip_key.unwrap_or("-"));
    rate_limited(fleet, &key, limit, 60, now).await
}

/// Whose account mails [`mail_rate_limited`] counts. Addresses and emails are kept apart: an
/// email field is whatever the caller typed, and it must not name (and spend) someone's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKey<'a> {
    /// A client address (its limit key).
    Address(&'a str),
    /// An email, normalised.
    Email(&'a str),
}

/// Account mails (reset and confirmation links, registrations) per hour for one client address
/// or one email. Returns the seconds to wait when over `limit`.
pub async fn mail_rate_limited(
    fleet: &Fleet,
    key: MailKey<'_>,
    limit: i64,
    now: Timestamp,
) -> Option<i64> {
    let key = match key {
        MailKey::Address(a) => format!("mail:ip:{a}"),
        MailKey::Email(e) => format!("mail:email:{e}"),
    };
    rate_limited(fleet, &key, limit, 3600, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: ThrottlePolicy = ThrottlePolicy {
        threshold: 3,
        base: 60,
        max: 600,
        ip_limit: 5,
        ip_window: 900,
    };

    fn attempt<'a>(device: Option<&'a str>, ip: &'a str) -> Attempt<'a> {
        Attempt {
            account: "ann@example.com",
            device,
            ip: Some(ip),
            factor: Factor::Password,
        }
    }

    #[test]
    fn the_lock_doubles_from_the_threshold_up_to_the_maximum() {
        assert_eq!(lock_seconds(&P, 2), 0);
        assert_eq!(lock_seconds(&P, 3), 60);
        assert_eq!(lock_seconds(&P, 4), 120);
        assert_eq!(lock_seconds(&P, 7), 600);
        assert_eq!(lock_seconds(&P, 1000), 600);
    }

    #[tokio::test]
    async fn account_mails_are_counted_per_address_and_per_email_apart_for_an_hour() {
        let fleet = Fleet::local();
        let from_address = MailKey::Address("198.51.100.1");
        for _ in 0..2 {
            assert_eq!(mail_rate_limited(&fleet, from_address, 2, 100).await, None);
        }
        assert!(
            mail_rate_limited(&fleet, from_address, 2, 100)
                .await
                .is_some()
        );
        // An email field that spells the address does not spend the address's allowance.
        let typed = MailKey::Email("198.51.100.1");
        assert_eq!(mail_rate_limited(&fleet, typed, 2, 100).await, None);
        assert_eq!(
            mail_rate_limited(&fleet, from_address, 2, 100 + 3600).await,
            None
        );
    }

    #[tokio::test]
    async fn sign_ins_are_limited_per_minute_from_one_address() {
        let fleet = Fleet::local();
        for _ in 0..3 {
            assert_eq!(signin_rate_limited(&fleet, Some("a"), 3, 100).await, None);
        }
        assert!(
            signin_rate_limited(&fleet, Some("a"), 3, 100)
                .await
                .is_some()
        );
        assert_eq!(signin_rate_limited(&fleet, Some("b"), 3, 100).await, None);
        assert_eq!(signin_rate_limited(&fleet, Some("a"), 3, 160).await, None);
        // No limit configured: never limited.
        for _ in 0..10 {
            assert_eq!(signin_rate_limited(&fleet, None, 0, 100).await, None);
        }
    }

    #[tokio::test]
    async fn an_account_locks_after_repeated_failures_and_opens_when_the_lock_ends() {
        let fleet = Fleet::local();
        let a = attempt(None, "198.51.100.1");
        for _ in 0..3 {
            assert_eq!(check(&fleet, &P, &a, 100).await, Gate::Open);
            failed(&fleet, &P, &a, 100).await;
        }
        assert_eq!(check(&fleet, &P, &a, 100).await, Gate::Locked(60));
        assert_eq!(check(&fleet, &P, &a, 160).await, Gate::Open);
        succeeded(&fleet, &a).await;
        failed(&fleet, &P, &a, 170).await;
        assert_eq!(check(&fleet, &P, &a, 170).await, Gate::Open);
    }

    #[tokio::test]
    async fn a_trusted_device_is_not_locked_out_by_failures_from_elsewhere() {
        let fleet = Fleet::local();
        for i in 0..3 {
            failed(&fleet, &P, &attempt(None, &format!("203.0.113.{i}")), 100).await;
        }
        assert!(matches!(
            check(&fleet, &P, &attempt(None, "192.0.2.9"), 100).await,
            Gate::Locked(_)
        ));
        assert_eq!(
            check(&fleet, &P, &attempt(Some("my-laptop"), "192.0.2.9"), 100).await,
            Gate::Open
        );
    }

    #[tokio::test]
    async fn password_and_second_factor_failures_are_counted_apart() {
        let fleet = Fleet::local();
        let pw = attempt(None, "198.51.100.2");
        for _ in 0..3 {
            failed(&fleet, &P, &pw, 100).await;
        }
        let mfa = Attempt {
            factor: Factor::SecondFactor,
            ip: None,
            ..attempt(None, "x")
        };
        assert_eq!(check(&fleet, &P, &mfa, 100).await, Gate::Open);
    }

    #[tokio::test]
    async fn an_address_that_fails_too_often_is_limited_whatever_the_account() {
        let fleet = Fleet::local();
        for i in 0..5 {
            let account = format!("user{i}@example.com");
            failed(
                &fleet,
                &P,
                &Attempt {
                    account: &account,
                    device: None,
                    ip: Some("192.0.2.50"),
                    factor: Factor::Password,
                },
                100,
            )
            .await;
        }
        assert!(matches!(
            check(&fleet, &P, &attempt(None, "192.0.2.50"), 101).await,
            Gate::Limited(_)
        ));
        assert_eq!(
            check(&fleet, &P, &attempt(None, "192.0.2.51"), 101).await,
            Gate::Open
        );
    }

    #[tokio::test]
    async fn a_completed_reset_lifts_the_account_lock() {
        let fleet = Fleet::local();
        let a = attempt(None, "198.51.100.7");
        for _ in 0..3 {
            failed(&fleet, &P, &a, 100).await;
        }
        assert!(matches!(check(&fleet, &P, &a, 100).await, Gate::Locked(_)));
        clear_account(&fleet, "ann@example.com").await;
        assert_eq!(check(&fleet, &P, &a, 100).await, Gate::Open);
    }

    #[tokio::test]
    async fn a_rate_limit_answers_how_long_to_wait() {
        let fleet = Fleet::local();
        assert_eq!(rate_limited(&fleet, "k", 2, 60, 100).await, None);
        assert_eq!(rate_limited(&fleet, "k", 2, 60, 100).await, None);
        assert_eq!(rate_limited(&fleet, "k", 2, 60, 110).await, Some(50));
        assert_eq!(rate_limited(&fleet, "k", 0, 60, 110).await, None);
    }
}
