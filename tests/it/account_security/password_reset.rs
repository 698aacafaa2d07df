//! Password reset through a mailed link: it sets a new password, ends every session, works
//! once and expires; and "forgot password" tells nobody whether an account exists.

use super::*;

// ---------------------------------------------------------------------------
// 1. Password reset through the mailed link
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_mailed_reset_link_sets_a_new_password_ends_every_session_and_works_only_once() {
    let _turn = share_the_machine().await;
    let (app, sink) = spawn_app_with_mail(|_| {}).await;
    let user = app.add_user("ann@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let laptop = app.new_browser();
    let laptop_tokens = app.tokens_for_in(&laptop, &client, &user).await;
    let phone = app.new_browser();

    let sent = ask_for_a_reset_link(&app, &phone, &user.email).await;
    sent.assert_says(
        StatusCode::OK,
        "If an account exists for ann@example.test, we sent it a link",
    );
    let link = mailed_reset_link(&app, &sink, &user.email).await;

    // Two different passwords are caught before anything changes.
    let differ = reset_through(&app, &phone, &link, NEW_PASSWORD, ANOTHER_PASSWORD).await;
    differ.assert_says(StatusCode::BAD_REQUEST, "The two passwords differ.");
    let done = reset_through(&app, &phone, &link, NEW_PASSWORD, NEW_PASSWORD).await;
    done.assert_says(StatusCode::OK, "Your password was changed");

    // Every earlier session ended: the laptop's app and browser are signed out.
    app.assert_refresh_refused(&client, laptop_tokens.refresh_token(), "the laptop's app")
        .await;
    app.assert_inactive(
        &client,
        &laptop_tokens.access_token,
        "the laptop's access token",
    )
    .await;
    assert!(
        !app.is_signed_in_in(&laptop, &client).await,
        "the laptop's browser is signed out after the reset"
    );

    // The old password no longer works; the new one does.
    assert_sign_in_refused(&app, &app.new_browser(), &user.email, &user.password).await;
    assert_sign_in_works(&app, &app.new_browser(), &user.email, NEW_PASSWORD).await;

    // The link worked once: it neither shows the form again nor sets another password.
    let again = open(&app, &phone, link.as_str()).await;
    again.assert_says(StatusCode::BAD_REQUEST, EXPIRED_LINK);
    let replay = post_reset_anyway(&app, &phone, &link, ANOTHER_PASSWORD).await;
    replay.assert_says(StatusCode::BAD_REQUEST, EXPIRED_LINK);
    assert_sign_in_refused(&app, &app.new_browser(), &user.email, ANOTHER_PASSWORD).await;
    assert_sign_in_works(&app, &app.new_browser(), &user.email, NEW_PASSWORD).await;

    let audit = audit_actions(&app).await;
    for action in ["password.reset_requested", "password.reset_completed"] {
        assert!(
            audit
                .iter()
                .any(|l| l.action == action && l.subject.as_deref() == Some(user.id.as_str())),
            "the audit log records {action} for the user: {audit:?}"
        );
    }
}

/// Posts the reset form with a link's token directly, as a form kept open in a tab (or the back
/// button) would after the link was spent or expired.
async fn post_reset_anyway(
    app: &TestApp,
    browser: &reqwest::Client,
    link: &Url,
    password: &str,
) -> Page {
    let forgot = open(app, browser, "/password/forgot").await;
    let csrf_token =
        input_value(&forgot.html, "csrf_token").expect("the forgot page carries a csrf_token");
    let token = link_token(link);
    let form = [
        ("csrf_token", csrf_token.as_str()),
        ("token", token.as_str()),
        ("password", password),
        ("confirm", password),
    ];
    let resp = browser
        .post(app.url("/password/reset"))
        .form(&form)
        .send()
        .await
        .expect("POST /password/reset");
    read_page(resp).await
}

#[tokio::test]
async fn a_reset_link_older_than_its_lifetime_is_refused() {
    let _turn = share_the_machine().await;
    let (app, sink) = spawn_app_with_mail(|c| {
        c.env("TESSERA_RESET_LINK_TTL", "1s");
    })
    .await;
    let user = app.add_user("ben@example.test").await;

    ask_for_a_reset_link(&app, &app.client, &user.email)
        .await
        .assert_says(StatusCode::OK, "we sent it a link");
    let link = mailed_reset_link(&app, &sink, &user.email).await;
    // The link was made before it was mailed; its one second passes.
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    open(&app, &app.client, link.as_str())
        .await
        .assert_says(StatusCode::BAD_REQUEST, EXPIRED_LINK);
    post_reset_anyway(&app, &app.client, &link, NEW_PASSWORD)
        .await
        .assert_says(StatusCode::BAD_REQUEST, EXPIRED_LINK);
    assert_sign_in_refused(&app, &app.new_browser(), &user.email, NEW_PASSWORD).await;
    assert_sign_in_works(&app, &app.new_browser(), &user.email, &user.password).await;
}

// ---------------------------------------------------------------------------
// 2. No account enumeration through "forgot password"
// ---------------------------------------------------------------------------

#[tokio::test]
async fn forgot_password_answers_the_same_for_an_unknown_email_and_mails_nobody() {
    let _turn = share_the_machine().await;
    let (app, sink) = spawn_app_with_mail(|_| {}).await;
    let known = app.add_user("carol@example.test").await;
    let blocked = app.add_user("dave@example.test").await;
    app.disable_user(&blocked.email).await;
    let unknown = "nobody@example.test";

    let for_unknown = ask_for_a_reset_link(&app, &app.new_browser(), unknown).await;
    let for_blocked = ask_for_a_reset_link(&app, &app.new_browser(), &blocked.email).await;
    let for_known = ask_for_a_reset_link(&app, &app.new_browser(), &known.email).await;

    for_known.assert_says(
        StatusCode::OK,
        "If an account exists for carol@example.test, we sent it a link",
    );
    let neutral = |page: &Page, email: &str| page.text().replace(email, "<email>");
    for (page, email) in [
        (&for_unknown, unknown),
        (&for_blocked, blocked.email.as_str()),
    ] {
        assert_eq!(page.status, for_known.status, "the same status for {email}");
        assert_eq!(
            neutral(page, email),
            neutral(&for_known, &known.email),
            "the page for {email} reads exactly like the one for an existing account"
        );
    }

    // The existing account gets its link; by then the others would have had theirs.
    mailed_reset_link(&app, &sink, &known.email).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let to_unknown = sink.received_by(unknown);
    let to_blocked = sink.received_by(&blocked.email);
    assert!(
        to_unknown.is_empty(),
        "nothing is mailed to an unknown address, but it got {:?}",
        subjects(&to_unknown)
    );
    assert!(
        to_blocked.is_empty(),
        "nothing is mailed to a disabled account, but it got {:?}",
        subjects(&to_blocked)
    );
    assert_eq!(
        sink.received().len(),
        1,
        "exactly one mail went out: {:?}",
        subjects(&sink.received())
    );
}

/// A completed reset ends the user's sessions, so each client of theirs that registered a
/// back-channel logout URI is told (OpenID Connect Back-Channel Logout).
#[tokio::test]
async fn a_mailed_reset_sends_a_logout_token_for_the_session_it_ended() {
    let _turn = share_the_machine().await;
    let receiver = LogoutReceiver::start().await;
    let (app, sink) = spawn_app_with_mail(|_| {}).await;
    let user = app.add_user("ann@example.test").await;
    let client = app
        .add_client(
            ClientSpec::first_party("webapp").backchannel_logout_uri(&receiver.url("/webapp")),
        )
        .await;
    let laptop = app.new_browser();
    let laptop_tokens = app.tokens_for_in(&laptop, &client, &user).await;
    let laptop_sid = jwt_claims(&laptop_tokens.access_token)["sid"].clone();
    let phone = app.new_browser();

    ask_for_a_reset_link(&app, &phone, &user.email).await;
    let link = mailed_reset_link(&app, &sink, &user.email).await;
    assert!(receiver.posts().is_empty(), "nothing ended yet");
    let done = reset_through(&app, &phone, &link, NEW_PASSWORD, NEW_PASSWORD).await;
    done.assert_says(StatusCode::OK, "Your password was changed");

    let posts = receiver
        .wait_for(1, Duration::from_secs(3), |p| p.path == "/webapp")
        .await;
    let claims = app
        .verify_jwt(&posts[0].logout_token(), "webapp")
        .await
        .expect("the logout token verifies against the JWKS");
    assert_eq!(claims["sid"], laptop_sid);
    assert_eq!(claims["sub"], serde_json::json!(user.id));
}
