//! Brute force: failed sign-ins lock an account (known or not) for a while, from one address
//! or many, without locking its owner out, and an address with too many failures gets 429.

use super::*;

#[tokio::test]
async fn repeated_failures_lock_an_account_and_an_unknown_email_alike_until_the_lock_ends() {
    let _turn = share_the_machine().await;
    let app = spawn_app_with(|c| {
        c.env("TESSERA_LOCKOUT_THRESHOLD", "3");
        // Long enough that the lock is still on after the unknown email's three failures and the
        // checks below on a loaded machine (with 2 s it had ended there, once, on PostgreSQL).
        c.env("TESSERA_LOCKOUT_BASE", "6s");
    })
    .await;
    let user = app.add_user("lee@example.test").await;
    let unknown = "ghost@example.test";
    let attacker = app.new_browser();

    for email in [user.email.as_str(), unknown] {
        for _ in 0..3 {
            attempt_sign_in(&app, &attacker, email, WRONG_PASSWORD)
                .await
                .assert_says(StatusCode::UNAUTHORIZED, BAD_CREDENTIALS);
        }
    }
    let locked = attempt_sign_in(&app, &attacker, &user.email, &user.password).await;
    let locked_unknown = attempt_sign_in(&app, &attacker, unknown, &user.password).await;

    locked.assert_says(StatusCode::TOO_MANY_REQUESTS, LOCKED);
    let wait = locked.assert_too_many(6);
    locked_unknown.assert_too_many(6);
    assert_eq!(
        locked_unknown.text(),
        locked.text(),
        "a locked unknown email reads exactly like a locked account"
    );
    // The owner, from a browser that never signed in to the account, is refused during the lock.
    let owner = app.new_browser();
    attempt_sign_in(&app, &owner, &user.email, &user.password)
        .await
        .assert_says(StatusCode::TOO_MANY_REQUESTS, LOCKED);

    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(200)).await;
    assert_sign_in_works(&app, &owner, &user.email, &user.password).await;

    let audit = audit_actions(&app).await;
    let failures = |reason: &str| {
        audit
            .iter()
            .filter(|l| l.action == "signin.failure" && l.detail["reason"] == reason)
            .count()
    };
    assert_eq!(failures("wrong_password"), 3, "{audit:?}");
    assert_eq!(failures("unknown_account"), 3, "{audit:?}");
    assert!(
        audit
            .iter()
            .any(|l| l.action == "signin.locked" && l.subject.as_deref() == Some(user.id.as_str())),
        "the lock is audited: {audit:?}"
    );
}

#[tokio::test]
async fn failures_from_many_addresses_still_lock_the_account_but_not_the_owners_browser() {
    let _turn = share_the_machine().await;
    let app = spawn_app_with(|c| {
        c.env("TESSERA_LOCKOUT_THRESHOLD", "3");
    })
    .await;
    let user = app.add_user("max@example.test").await;

    // The owner signed in from this browser before: it holds a signed device cookie.
    let owner = app.new_browser();
    let resp = app
        .plain_sign_in_in(&owner, &user.email, &user.password)
        .await;
    assert_eq!(expect_see_other(&resp).path(), "/account");
    let device = set_cookies(&resp)
        .into_iter()
        .find(|c| c.name == "tessera_device")
        .expect("a sign-in sets the tessera_device cookie");
    assert!(device.attribute("httponly").is_some(), "{device:?}");

    // Three attackers, three addresses, one failure each.
    for source in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        attempt_sign_in(&app, &browser_from(source), &user.email, WRONG_PASSWORD)
            .await
            .assert_says(StatusCode::UNAUTHORIZED, BAD_CREDENTIALS);
    }
    let fourth = attempt_sign_in(
        &app,
        &browser_from("127.0.0.5"),
        &user.email,
        &user.password,
    )
    .await;
    fourth.assert_says(StatusCode::TOO_MANY_REQUESTS, LOCKED);
    fourth.assert_too_many(60);

    // The owner's browser is not locked out by them.
    assert_sign_in_works(&app, &owner, &user.email, &user.password).await;
}

#[tokio::test]
async fn an_address_with_too_many_failures_gets_429_for_every_account_while_others_sign_in() {
    let _turn = share_the_machine().await;
    let app = spawn_app_with(|c| {
        c.env("TESSERA_IP_FAILURE_LIMIT", "4");
        c.env("TESSERA_LOCKOUT_THRESHOLD", "100");
    })
    .await;
    let user = app.add_user("ned@example.test").await;
    let other = app.add_user("olga@example.test").await;
    let noisy = browser_from("127.0.0.2");

    for i in 0..4 {
        attempt_sign_in(
            &app,
            &noisy,
            &format!("guess{i}@example.test"),
            WRONG_PASSWORD,
        )
        .await
        .assert_says(StatusCode::UNAUTHORIZED, BAD_CREDENTIALS);
    }
    for account in [&user, &other] {
        let page = attempt_sign_in(&app, &noisy, &account.email, &account.password).await;
        page.assert_too_many(15 * 60);
    }
    let quiet = browser_from("127.0.0.3");
    assert_sign_in_works(&app, &quiet, &user.email, &user.password).await;
    assert_sign_in_works(&app, &app.new_browser(), &other.email, &other.password).await;
}
