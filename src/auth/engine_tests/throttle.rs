//! Sign-in throttling through the sign-in use case: the account lock (its length, its doubling,
//! its end), the day over which failures add up, and the per-address window.

use crate::auth::password::PasswordHasher;
use crate::auth::signin::{
    SignInError, SignInOutcome, SignInRequest, SignInRules, SignedIn, sign_in,
};
use crate::auth::throttle::ThrottlePolicy;
use crate::config::SessionLimitPolicy;
use crate::secret::SecretString;
use crate::testkit::{Kit, PASSWORD};

const EDGES: [i64; 3] = [-1, 0, 1];

/// Three failures lock for 60 s, doubling up to 600 s; an address may fail 1000 times in 900 s.
const POLICY: ThrottlePolicy = ThrottlePolicy {
    threshold: 3,
    base: 60,
    max: 600,
    ip_limit: 1000,
    ip_window: 900,
};

struct Desk {
    k: Kit,
    hasher: PasswordHasher,
    policy: ThrottlePolicy,
}

impl Desk {
    async fn new(policy: ThrottlePolicy) -> Self {
        let k = Kit::new().await;
        k.user("ada@example.test").await;
        Self {
            k,
            hasher: Kit::cheap_hasher(),
            policy,
        }
    }

    async fn attempt(&self, email: &str, password: &str) -> Result<SignedIn, SignInError> {
        let rules = SignInRules {
            hasher: &self.hasher,
            throttle: self.policy,
            max_sessions: 0,
            session_policy: SessionLimitPolicy::EvictOldest,
        };
        let request = SignInRequest {
            email,
            password: SecretString::new(password),
            ip: Some("198.51.100.7".into()),
            ip_key: Some("198.51.100.7".into()),
            user_agent: None,
            trusted_device: None,
            previous_session: None,
            wants_mfa: false,
            resume: None,
        };
        match sign_in(&self.k.p, &rules, request).await? {
            SignInOutcome::SignedIn(s) => Ok(s),
            other => panic!("a password-only sign-in: {other:?}"),
        }
    }

    async fn right(&self) -> Result<SignedIn, SignInError> {
        self.attempt("ada@example.test", PASSWORD).await
    }

    async fn wrong(&self, times: usize) {
        for _ in 0..times {
            let r = self.attempt("ada@example.test", "not the password").await;
            assert!(matches!(r, Err(SignInError::BadCredentials)), "{r:?}");
        }
    }
}

#[tokio::test]
async fn an_account_locked_by_the_threshold_opens_exactly_when_its_lock_ends() {
    for edge in EDGES {
        let d = Desk::new(POLICY).await;
        d.wrong(3).await;
        d.k.advance(POLICY.base + edge);
        let r = d.right().await;
        if edge < 0 {
            assert!(
                matches!(r, Err(SignInError::Locked(1))),
                "{edge}s from the lock's end: {r:?}"
            );
        } else {
            assert!(r.is_ok(), "{edge}s from the lock's end: {r:?}");
        }
    }
}

#[tokio::test]
async fn two_failures_below_the_threshold_lock_nothing() {
    let d = Desk::new(POLICY).await;
    d.wrong(2).await;
    d.right().await.expect("no lock below the threshold");
}

#[tokio::test]
async fn a_failure_after_a_lock_ends_locks_again_for_twice_as_long() {
    let d = Desk::new(POLICY).await;
    d.wrong(3).await;
    d.k.advance(POLICY.base);
    d.wrong(1).await;

    d.k.advance(2 * POLICY.base - 1);
    let r = d.right().await;
    assert!(matches!(r, Err(SignInError::Locked(1))), "{r:?}");
    d.k.advance(1);
    d.right().await.expect("the doubled lock has ended");
}

#[tokio::test]
async fn failures_add_up_over_a_day_counted_from_the_first_one() {
    for edge in EDGES {
        let d = Desk::new(POLICY).await;
        d.wrong(2).await;
        d.k.advance(86_400 + edge);
        d.wrong(1).await;
        let r = d.right().await;
        if edge < 0 {
            assert!(
                matches!(r, Err(SignInError::Locked(60))),
                "{edge}s from a day after the first failure: the third failure locks: {r:?}"
            );
        } else {
            assert!(
                r.is_ok(),
                "{edge}s from a day after the first failure: counting started over: {r:?}"
            );
        }
    }
}

#[tokio::test]
async fn an_address_over_its_failure_limit_is_refused_until_its_window_ends() {
    let policy = ThrottlePolicy {
        threshold: 100,
        ip_limit: 3,
        ..POLICY
    };
    for edge in EDGES {
        let d = Desk::new(policy).await;
        for who in ["x@example.test", "y@example.test", "z@example.test"] {
            let r = d.attempt(who, "guess").await;
            assert!(matches!(r, Err(SignInError::BadCredentials)), "{r:?}");
        }
        d.k.advance(policy.ip_window + edge);
        let r = d.right().await;
        if edge < 0 {
            assert!(
                matches!(r, Err(SignInError::Limited(1))),
                "{edge}s from the window's end: {r:?}"
            );
        } else {
            assert!(r.is_ok(), "{edge}s from the window's end: {r:?}");
        }
    }
}
