//! The second step on the shared test kit, with a clock the tests move: its five-minute life to
//! the second, wrong codes that leave it pending, single use, the step-up, and its own lock.

use super::*;
use crate::auth::mfa::totp::TotpSecret;
use crate::auth::mfa::{FactorName, begin_totp_enrolment, confirm_totp_enrolment};
use crate::auth::signin::{SignInOutcome, SignInRequest, sign_in};
use crate::auth::throttle::ThrottlePolicy;
use crate::config::SessionLimitPolicy;
use crate::testkit::{Kit, PASSWORD};

/// Three failures lock for 60 s.
const POLICY: ThrottlePolicy = ThrottlePolicy {
    threshold: 3,
    base: 60,
    max: 600,
    ip_limit: 1000,
    ip_window: 900,
};

struct Desk {
    k: Kit,
    hasher: crate::auth::password::PasswordHasher,
    user: User,
    app: TotpSecret,
}

impl Desk {
    /// Ada, whose authenticator app was confirmed a minute ago (so the present steps are
    /// unused).
    async fn new() -> Self {
        let k = Kit::new().await;
        let user = k.user("ada@example.test").await;
        let e = begin_totp_enrolment(&k.p, &user).await.unwrap();
        let app = TotpSecret::parse_base32(e.key.expose()).unwrap();
        let name = FactorName::parse("Phone", "").unwrap();
        let code = app.code_at(k.now()).unwrap();
        confirm_totp_enrolment(&k.p, &user.id, &e.id, &name, &code)
            .await
            .unwrap();
        k.advance(60);
        Self {
            k,
            hasher: crate::testkit::Kit::cheap_hasher(),
            user,
            app,
        }
    }

    fn rules(&self) -> SignInRules<'_> {
        SignInRules {
            hasher: &self.hasher,
            throttle: POLICY,
            max_sessions: 0,
            session_policy: SessionLimitPolicy::EvictOldest,
        }
    }

    /// The password step from a browser with this device cookie.
    async fn password(&self, device: Option<&str>) -> SignInOutcome {
        let request = SignInRequest {
            email: &self.user.email,
            password: SecretString::new(PASSWORD),
            ip: Some("198.51.100.7".into()),
            ip_key: Some("198.51.100.7".into()),
            user_agent: None,
            trusted_device: device.map(|d| (self.user.id.clone(), d.to_string())),
            previous_session: None,
            wants_mfa: false,
            resume: None,
        };
        sign_in(&self.k.p, &self.rules(), request).await.unwrap()
    }

    async fn pending(&self) -> String {
        match self.password(None).await {
            SignInOutcome::SecondStep { handle, .. } => handle.into_inner(),
            other => panic!("a user with an app gets the second step: {other:?}"),
        }
    }

    fn right_code(&self) -> String {
        self.app.code_at(self.k.now()).unwrap()
    }

    async fn answer(&self, handle: &str, code: &str) -> Result<Completed, SecondStepError> {
        let browser = Browser {
            handle: handle.into(),
            ip: Some("198.51.100.7".into()),
            ip_key: Some("198.51.100.7".into()),
            user_agent: None,
            previous_session: None,
        };
        complete_with_code(&self.k.p, &self.rules(), browser, code).await
    }
}

#[tokio::test]
async fn a_pending_second_step_lives_five_minutes_to_the_second() {
    for (after, alive) in [(299, true), (300, false), (301, false)] {
        let d = Desk::new().await;
        let handle = d.pending().await;
        d.k.advance(after);
        let r = d.answer(&handle, &d.right_code()).await;
        if alive {
            assert!(r.is_ok(), "{after}s after the password: {r:?}");
        } else {
            assert!(
                matches!(r, Err(SecondStepError::Gone)),
                "{after}s after the password: {r:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_wrong_code_leaves_the_step_pending_without_extending_it() {
    let d = Desk::new().await;
    let handle = d.pending().await;
    d.k.advance(200);
    let r = d.answer(&handle, "000000").await;
    assert!(matches!(r, Err(SecondStepError::InvalidCode)), "{r:?}");
    d.k.advance(99);
    let done = d.answer(&handle, &d.right_code()).await.unwrap();
    assert_eq!(done.active.user.id, d.user.id);
    assert_eq!(done.active.session.amr, ["pwd", "otp", "mfa"]);
    assert!(!done.raised);

    let d = Desk::new().await;
    let handle = d.pending().await;
    d.k.advance(200);
    assert!(d.answer(&handle, "000000").await.is_err());
    d.k.advance(100);
    let r = d.answer(&handle, &d.right_code()).await;
    assert!(
        matches!(r, Err(SecondStepError::Gone)),
        "a failure does not restart the five minutes: {r:?}"
    );
}

#[tokio::test]
async fn a_completed_step_cannot_be_completed_again() {
    let d = Desk::new().await;
    let handle = d.pending().await;
    d.answer(&handle, &d.right_code()).await.unwrap();
    d.k.advance(30);
    let r = d.answer(&handle, &d.right_code()).await;
    assert!(matches!(r, Err(SecondStepError::Gone)), "{r:?}");
}

#[tokio::test]
async fn an_unknown_handle_is_no_pending_step() {
    let d = Desk::new().await;
    d.pending().await;
    for handle in ["", "not-a-handle", &"x".repeat(4096)] {
        let r = d.answer(handle, &d.right_code()).await;
        assert!(matches!(r, Err(SecondStepError::Gone)), "{r:?}");
    }
}

#[tokio::test]
async fn a_step_up_raises_the_live_session_and_gives_it_a_new_cookie() {
    let d = Desk::new().await;
    let (old_cookie, active) = d.k.session(&d.user).await;
    let handle = begin(
        &d.k.p,
        &d.user.id,
        &active.session.amr,
        None,
        Some(&active.session.id),
    )
    .await
    .unwrap();
    let done = d.answer(handle.expose(), &d.right_code()).await.unwrap();
    assert!(done.raised);
    assert_eq!(
        done.active.session.id, active.session.id,
        "the same session"
    );
    assert_eq!(done.active.session.amr, ["pwd", "otp", "mfa"]);
    assert_eq!(done.active.session.auth_time, active.session.auth_time);
    assert!(
        d.k.resolve(&old_cookie).await.is_none(),
        "the old cookie is dead"
    );
    let raised = d.k.resolve(done.cookie_value.expose()).await.unwrap();
    assert_eq!(raised.session.id, active.session.id);
}

#[tokio::test]
async fn a_step_up_of_a_session_that_ended_meanwhile_raises_nothing() {
    let d = Desk::new().await;
    let (_, active) = d.k.session(&d.user).await;
    let handle = begin(
        &d.k.p,
        &d.user.id,
        &["pwd".into()],
        None,
        Some(&active.session.id),
    )
    .await
    .unwrap();
    d.k.p.revoke_session(&active.session.id).await.unwrap();
    let r = d.answer(handle.expose(), &d.right_code()).await;
    assert!(matches!(r, Err(SecondStepError::Gone)), "{r:?}");
}

#[tokio::test]
async fn a_locked_second_step_refuses_even_the_right_code_but_not_the_password() {
    let d = Desk::new().await;
    let handle = d.pending().await;
    for _ in 0..POLICY.threshold {
        let r = d.answer(&handle, "000000").await;
        assert!(matches!(r, Err(SecondStepError::InvalidCode)), "{r:?}");
    }
    let r = d.answer(&handle, &d.right_code()).await;
    assert!(matches!(r, Err(SecondStepError::Locked(60))), "{r:?}");

    // The password step of the owner's trusted device still goes through to a second step.
    assert!(matches!(
        d.password(Some("ada-laptop")).await,
        SignInOutcome::SecondStep { .. }
    ));

    // Once the lock ends, the step (still pending, if young enough) takes the right code.
    let handle = d.pending().await;
    d.k.advance(POLICY.base);
    d.answer(&handle, &d.right_code()).await.unwrap();
}

#[tokio::test]
async fn one_users_failures_never_lock_another_users_second_step() {
    let d = Desk::new().await;
    let handle = d.pending().await;
    for _ in 0..POLICY.threshold {
        assert!(d.answer(&handle, "000000").await.is_err());
    }
    // Bob, from the same address.
    let bob = d.k.user("bob@example.test").await;
    let e = begin_totp_enrolment(&d.k.p, &bob).await.unwrap();
    let bobs = TotpSecret::parse_base32(e.key.expose()).unwrap();
    let name = FactorName::parse("Phone", "").unwrap();
    let code = bobs.code_at(d.k.now() - 30).unwrap();
    confirm_totp_enrolment(&d.k.p, &bob.id, &e.id, &name, &code)
        .await
        .unwrap();
    let bobs_step = begin(&d.k.p, &bob.id, &["pwd".into()], None, None)
        .await
        .unwrap();
    let done = d
        .answer(bobs_step.expose(), &bobs.code_at(d.k.now()).unwrap())
        .await
        .unwrap();
    assert_eq!(done.active.user.id, bob.id);
}

#[tokio::test]
async fn a_code_of_another_users_app_does_not_answer_this_users_step() {
    let d = Desk::new().await;
    let bob = d.k.user("bob@example.test").await;
    let e = begin_totp_enrolment(&d.k.p, &bob).await.unwrap();
    let bobs = TotpSecret::parse_base32(e.key.expose()).unwrap();
    let name = FactorName::parse("Phone", "").unwrap();
    let code = bobs.code_at(d.k.now() - 30).unwrap();
    confirm_totp_enrolment(&d.k.p, &bob.id, &e.id, &name, &code)
        .await
        .unwrap();
    let adas_step = d.pending().await;
    let r = d
        .answer(&adas_step, &bobs.code_at(d.k.now()).unwrap())
        .await;
    assert!(matches!(r, Err(SecondStepError::InvalidCode)), "{r:?}");
}

impl Desk {
    /// A pending step of Ada's kept on the server (as one too large for a cookie is).
    async fn stored_pending(&self) -> String {
        let step = PendingSecondStep {
            amr: vec!["pwd".into()],
            request: None,
            raise: None,
        };
        ceremony::begin(
            &self.k.p,
            CeremonyKind::SecondStep,
            Some(&self.user.id),
            &step,
        )
        .await
        .unwrap()
        .into_inner()
    }

    async fn ceremony_rows(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM mfa_ceremonies")
            .fetch_one(&self.k.p.store.pool)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn the_password_step_keeps_the_pending_step_in_the_browser_and_writes_nothing() {
    let d = Desk::new().await;
    let rows = d.ceremony_rows().await;
    let handle = d.pending().await;
    assert!(
        handle.starts_with("s1."),
        "sealed into the cookie: {handle}"
    );
    assert!(!handle.contains(&d.user.id), "nothing readable in it");
    assert_eq!(d.ceremony_rows().await, rows, "nothing stored");
    d.answer(&handle, &d.right_code()).await.unwrap();
}

#[tokio::test]
async fn a_sealed_step_altered_or_sealed_under_another_key_is_no_pending_step() {
    let d = Desk::new().await;
    let handle = d.pending().await;
    // One character changed, anywhere past the prefix; cut short; another server's.
    let mut altered = handle.clone().into_bytes();
    let i = altered.len() / 2;
    altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let cut = handle[..handle.len() - 4].to_string();
    let elsewhere = Desk::new().await.pending().await;
    for forged in [altered, cut, elsewhere] {
        let r = d.answer(&forged, &d.right_code()).await;
        assert!(matches!(r, Err(SecondStepError::Gone)), "{r:?}");
    }
    // None of them spent the code.
    d.answer(&handle, &d.right_code()).await.unwrap();
}

#[tokio::test]
async fn a_sealed_step_of_another_issuer_with_the_same_master_key_is_no_pending_step() {
    let d = Desk::new().await;
    let handle = d.pending().await;
    // A staging copy: the same database and master key, another issuer.
    let mut staging = d.k.p.clone();
    let mut settings = (*staging.settings).clone();
    settings.issuer = "https://staging.example.test".into();
    staging.settings = std::sync::Arc::new(settings);
    assert!(pending(&staging, &handle).await.unwrap().is_none());
    assert!(pending(&d.k.p, &handle).await.unwrap().is_some());
}

#[tokio::test]
async fn a_sealed_step_begun_before_all_sessions_ended_is_gone_and_one_begun_after_is_not() {
    let d = Desk::new().await;
    let before = d.pending().await;
    // In the same second: the order decides, not the clock.
    d.k.p.revoke_user_sessions(&d.user.id, None).await.unwrap();
    let r = d.answer(&before, &d.right_code()).await;
    assert!(matches!(r, Err(SecondStepError::Gone)), "{r:?}");
    let after = d.pending().await;
    let done = d.answer(&after, &d.right_code()).await.unwrap();
    assert_eq!(done.active.user.id, d.user.id);
}

#[tokio::test]
async fn wrong_codes_on_a_step_that_is_gone_count_no_failure() {
    let d = Desk::new().await;
    let spent = d.pending().await;
    d.answer(&spent, &d.right_code()).await.unwrap();
    let ended = d.pending().await;
    d.k.advance(30);
    d.k.p.revoke_user_sessions(&d.user.id, None).await.unwrap();
    // More wrong codes than the lock's threshold (3), on each.
    for handle in [&spent, &ended] {
        for _ in 0..4 {
            let r = d.answer(handle, "000000").await;
            assert!(matches!(r, Err(SecondStepError::Gone)), "{r:?}");
        }
    }
    // Ada's own next sign-in is not locked.
    let fresh = d.pending().await;
    d.answer(&fresh, &d.right_code()).await.unwrap();
}

#[tokio::test]
async fn a_step_too_large_for_a_cookie_is_kept_on_the_server_and_completes_once() {
    let d = Desk::new().await;
    let request = Params::from_pairs(vec![
        ("client_id".into(), "web".into()),
        ("state".into(), "s".repeat(2048)),
        ("nonce".into(), "n".repeat(2048)),
    ])
    .unwrap();
    let rows = d.ceremony_rows().await;
    let amr = ["pwd".to_string()];
    let handle = begin(&d.k.p, &d.user.id, &amr, Some(&request), None)
        .await
        .unwrap()
        .into_inner();
    assert!(!handle.starts_with("s1.") && handle.len() < 100, "{handle}");
    assert_eq!(d.ceremony_rows().await, rows + 1);
    let done = d.answer(&handle, &d.right_code()).await.unwrap();
    assert_eq!(done.request.unwrap().get("state").map(str::len), Some(2048));
    d.k.advance(30);
    let r = d.answer(&handle, &d.right_code()).await;
    assert!(matches!(r, Err(SecondStepError::Gone)), "{r:?}");
}

/// Holds Ada's pending step, kept on the server (as a check in progress once did), ends all
/// her sessions meanwhile, then puts the step back, as a wrong code once did.
async fn held_while_all_sessions_end(d: &Desk) -> String {
    let handle = d.stored_pending().await;
    let held = ceremony::hold::<PendingSecondStep>(&d.k.p, CeremonyKind::SecondStep, &handle)
        .await
        .unwrap()
        .expect("the step is pending");
    d.k.advance(1);
    d.k.p.revoke_user_sessions(&d.user.id, None).await.unwrap();
    ceremony::put_back(&d.k.p, held).await.unwrap();
    handle
}

#[tokio::test]
async fn a_step_held_while_all_sessions_end_is_gone_once_put_back() {
    let d = Desk::new().await;
    let handle = held_while_all_sessions_end(&d).await;
    d.k.advance(5);
    let r = d.answer(&handle, &d.right_code()).await;
    assert!(matches!(r, Err(SecondStepError::Gone)), "{r:?}");
    // The code was not spent by it: a new sign-in takes it.
    let fresh = d.pending().await;
    d.answer(&fresh, &d.right_code()).await.unwrap();
}

/// A security key's answer (signed by nobody) to a key ceremony that does not exist, posted
/// with the pending step `handle`.
async fn forged_key_answer(
    d: &Desk,
    handle: String,
) -> Result<Completed, crate::auth::mfa::webauthn::KeyStepError> {
    let browser = Browser {
        handle,
        ip: Some("198.51.100.7".into()),
        ip_key: Some("198.51.100.7".into()),
        user_agent: None,
        previous_session: None,
    };
    let answer: webauthn_rs::prelude::PublicKeyCredential =
        serde_json::from_value(serde_json::json!({
            "id": "AAAAAAAAAAAAAAAAAAAAAA",
            "rawId": "AAAAAAAAAAAAAAAAAAAAAA",
            "type": "public-key",
            "response": {
                "authenticatorData": "AAAA",
                "clientDataJSON": "AAAA",
                "signature": "AAAA",
                "userHandle": null
            },
            "extensions": {}
        }))
        .unwrap();
    crate::auth::mfa::webauthn::complete_second_step_with_key(
        &d.k.p,
        &d.rules(),
        browser,
        "no-key-ceremony",
        &answer,
    )
    .await
}

fn is_gone<T: std::fmt::Debug>(r: &Result<T, crate::auth::mfa::webauthn::KeyStepError>) -> bool {
    matches!(
        r,
        Err(crate::auth::mfa::webauthn::KeyStepError::Step(
            SecondStepError::Gone
        ))
    )
}

#[tokio::test]
async fn a_step_held_while_all_sessions_end_does_not_come_back_for_a_security_key_either() {
    let d = Desk::new().await;
    let handle = held_while_all_sessions_end(&d).await;
    let r = forged_key_answer(&d, handle).await;
    assert!(is_gone(&r), "{r:?}");
}

#[tokio::test]
async fn a_key_answer_on_a_dead_sealed_step_is_gone_even_when_its_key_ceremony_is_gone_too() {
    let d = Desk::new().await;
    let live = d.pending().await;
    let r = forged_key_answer(&d, live).await;
    assert!(
        matches!(r, Err(crate::auth::mfa::webauthn::KeyStepError::Expired)),
        "a live step whose key ceremony is gone: the key request expired: {r:?}"
    );
    let dead = d.pending().await;
    d.k.p.revoke_user_sessions(&d.user.id, None).await.unwrap();
    let r = forged_key_answer(&d, dead).await;
    assert!(is_gone(&r), "{r:?}");
}

#[tokio::test]
async fn a_step_from_the_second_before_all_sessions_ended_is_gone_and_one_from_that_second_is_not()
{
    let d = Desk::new().await;
    // Begun (and held) one second before the ending: gone once put back.
    let handle = held_while_all_sessions_end(&d).await;
    let r = d.answer(&handle, &d.right_code()).await;
    assert!(matches!(r, Err(SecondStepError::Gone)), "{r:?}");
    // Begun in the same second, after the ending (a new sign-in right after adding a factor
    // elsewhere): completes.
    let same_second = d.pending().await;
    let done = d.answer(&same_second, &d.right_code()).await.unwrap();
    assert_eq!(done.active.user.id, d.user.id);
}

#[tokio::test]
async fn a_successful_second_step_writes_one_audit_entry_for_the_sign_in() {
    use crate::store::AuditStore;
    let d = Desk::new().await;
    let handle = d.pending().await;
    let before = d.k.p.store.audit_head().await.unwrap().0;
    let done = d.answer(&handle, &d.right_code()).await.unwrap();
    let after = d.k.p.store.audit_after(before, 10).await.unwrap();
    let actions: Vec<&str> = after.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["signin.success"]);
    let detail: serde_json::Value = serde_json::from_str(&after[0].detail).unwrap();
    assert_eq!(detail["second_step"], "totp");
    assert_eq!(detail["session"], done.active.session.id.as_str());
    assert_eq!(detail["amr"], "pwd otp mfa");
}

#[tokio::test]
async fn a_spent_step_stays_spent_after_a_purge_by_a_replica_whose_clock_runs_ahead() {
    use crate::store::PurgeStore;
    let d = Desk::new().await;
    let handle = d.pending().await;
    d.answer(&handle, &d.right_code()).await.unwrap();
    // Near the end of the step's five minutes, a replica whose clock is 15 s ahead runs the
    // purge: to it the step has expired.
    d.k.advance(290);
    while d
        .k
        .p
        .store
        .purge_expired(d.k.now() + 15, 100)
        .await
        .unwrap()
        > 0
    {}
    let r = d.answer(&handle, &d.right_code()).await;
    assert!(matches!(r, Err(SecondStepError::Gone)), "a replay: {r:?}");
}

#[tokio::test]
async fn a_step_that_is_gone_answers_gone_and_audits_nothing_while_the_user_is_locked() {
    use crate::store::AuditStore;
    let d = Desk::new().await;
    let spent = d.pending().await;
    d.answer(&spent, &d.right_code()).await.unwrap();
    let ended = d.pending().await;
    d.k.advance(30);
    d.k.p.revoke_user_sessions(&d.user.id, None).await.unwrap();
    // Ada's live step is locked by wrong codes.
    let live = d.pending().await;
    for _ in 0..POLICY.threshold {
        assert!(d.answer(&live, "000000").await.is_err());
    }
    assert!(matches!(
        d.answer(&live, "000000").await,
        Err(SecondStepError::Locked(_))
    ));
    let before = d.k.p.store.audit_head().await.unwrap().0;
    for handle in [&spent, &ended] {
        let r = d.answer(handle, "000000").await;
        assert!(matches!(r, Err(SecondStepError::Gone)), "{r:?}");
    }
    let after = d.k.p.store.audit_after(before, 10).await.unwrap();
    assert!(after.is_empty(), "{after:?}");
}

#[tokio::test]
async fn a_wrong_code_counts_even_when_the_steps_liveness_cannot_be_read() {
    let d = Desk::new().await;
    let handle = d.pending().await;
    // The read of whether the step is live fails (the factors are still read).
    sqlx::query("ALTER TABLE users RENAME COLUMN sessions_epoch TO sessions_epoch_gone")
        .execute(&d.k.p.store.pool)
        .await
        .unwrap();
    for _ in 0..POLICY.threshold {
        let r = d.answer(&handle, "000000").await;
        assert!(matches!(r, Err(SecondStepError::InvalidCode)), "{r:?}");
    }
    // Every guess counted: the right code is not even checked.
    let r = d.answer(&handle, &d.right_code()).await;
    assert!(matches!(r, Err(SecondStepError::Locked(60))), "{r:?}");
}
