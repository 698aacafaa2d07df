//! The password policy (length, breached passwords, the email in the password) wherever a
//! password is chosen: reset, registration, change and `tessera user add`.

use super::*;

/// Passwords the policy refuses for `email` (its name part is `kim`), with the reason shown.
fn refused_passwords() -> [(&'static str, &'static str); 4] {
    [
        ("eleven char", TOO_SHORT),
        ("password1234", BREACHED),
        ("qwertyuiop123", BREACHED),
        ("kim-likes-long-walks", CONTAINS_EMAIL),
    ]
}

#[tokio::test]
async fn a_reset_refuses_short_breached_and_email_based_passwords_and_the_link_stays_usable() {
    let _turn = share_the_machine().await;
    // Each refused password is also tried at sign-in; no lock-out should get in the way.
    let (app, sink) = spawn_app_with_mail(|c| {
        c.env("TESSERA_LOCKOUT_THRESHOLD", "100");
    })
    .await;
    let user = app.add_user("kim@example.test").await;
    ask_for_a_reset_link(&app, &app.client, &user.email).await;
    let link = mailed_reset_link(&app, &sink, &user.email).await;

    for (password, reason) in refused_passwords()
        .into_iter()
        .chain([("my kim@example.test pass", CONTAINS_EMAIL)])
    {
        let page = reset_through(&app, &app.client, &link, password, password).await;
        page.assert_says(StatusCode::BAD_REQUEST, reason);
        assert_sign_in_refused(&app, &app.new_browser(), &user.email, password).await;
    }
    // After every refusal the same link still sets a good password.
    reset_through(&app, &app.client, &link, NEW_PASSWORD, NEW_PASSWORD)
        .await
        .assert_says(StatusCode::OK, "Your password was changed");
    assert_sign_in_works(&app, &app.new_browser(), &user.email, NEW_PASSWORD).await;
}

#[tokio::test]
async fn registration_refuses_short_breached_and_email_based_passwords() {
    let _turn = share_the_machine().await;
    let (app, sink) = spawn_app_with_mail(|c| {
        c.env("TESSERA_SELF_REGISTRATION", "true");
        c.env("TESSERA_LOCKOUT_THRESHOLD", "100");
    })
    .await;
    let email = "kim@example.test";
    for (password, reason) in refused_passwords() {
        let page = register(&app, &app.new_browser(), "Kim", email, password).await;
        page.assert_says(StatusCode::BAD_REQUEST, reason);
        assert_sign_in_refused(&app, &app.new_browser(), email, password).await;
    }
    // No account was created along the way: a good password now registers a new account.
    register(&app, &app.new_browser(), "Kim", email, NEW_PASSWORD)
        .await
        .assert_says(StatusCode::OK, "Check your email");
    mailed_confirmation_link(&app, &sink, email).await;
    assert_eq!(
        subjects(&sink.received_by(email)),
        ["Confirm your email address"],
        "the refused attempts mailed nothing"
    );
}

#[tokio::test]
async fn changing_the_password_refuses_a_password_the_policy_forbids() {
    let _turn = share_the_machine().await;
    let app = spawn_app().await;
    let user = app.add_user("kim@example.test").await;
    let browser = app.new_browser();
    app.sign_in_to_account_in(&browser, &user).await;
    for (password, reason) in refused_passwords() {
        let page = fill_in(
            &app,
            &browser,
            "/account/password",
            "/account/password",
            &[
                ("current", &user.password),
                ("password", password),
                ("confirm", password),
            ],
        )
        .await;
        page.assert_says(StatusCode::BAD_REQUEST, reason);
    }
    assert_sign_in_works(&app, &app.new_browser(), &user.email, &user.password).await;
}

#[tokio::test]
async fn tessera_user_add_refuses_short_breached_and_email_based_passwords() {
    let _turn = share_the_machine().await;
    let app = spawn_app().await;
    let email = "kim@example.test";
    for (password, reason) in refused_passwords() {
        let out = app
            .cli(
                &["user", "add", "--email", email, "--password-stdin"],
                Some(password),
            )
            .await;
        assert!(
            !out.status.success(),
            "`tessera user add` should refuse {password:?}, but it succeeded: {}",
            out.stdout
        );
        assert!(
            out.stderr.contains(reason),
            "`tessera user add` says why it refused {password:?} ({reason:?}), said:\n{}{}",
            out.stdout,
            out.stderr
        );
    }
    assert_sign_in_refused(&app, &app.new_browser(), email, "password1234").await;
    // None of them created the user: a good password does.
    let out = app
        .cli(
            &["user", "add", "--email", email, "--password-stdin"],
            Some(NEW_PASSWORD),
        )
        .await;
    out.assert_success("tessera user add with a good password");
    assert_sign_in_works(&app, &app.new_browser(), email, NEW_PASSWORD).await;
}
