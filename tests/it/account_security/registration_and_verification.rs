//! Self-registration and email verification: an account is unverified until its mailed link
//! is confirmed, an existing email is not revealed, and the feature can be off.

use super::*;

#[tokio::test]
async fn a_self_registered_account_is_unverified_until_the_mailed_link_confirms_it() {
    let _turn = share_the_machine().await;
    let (app, sink) = spawn_app_with_mail(|c| {
        c.env("TESSERA_SELF_REGISTRATION", "true");
    })
    .await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let email = "fay@example.test";
    let browser = app.new_browser();

    let login = open(&app, &browser, "/login").await;
    assert!(
        login.links_to("/register", "Create an account"),
        "with self-registration on, the sign-in page offers \"Create an account\":\n{}",
        login.html
    );
    let answer = register(&app, &browser, "Fay", email, NEW_PASSWORD).await;
    answer.assert_says(StatusCode::OK, "Check your email");
    let link = mailed_confirmation_link(&app, &sink, email).await;

    // The account exists and can sign in, unverified.
    let before = tokens_signing_in_as(&app, &app.new_browser(), &client, email, NEW_PASSWORD).await;
    let claims = userinfo_claims(&app, &before.access_token).await;
    assert_eq!(claims["email"], email, "{claims}");
    assert_eq!(claims["name"], "Fay", "{claims}");
    assert_eq!(claims["email_verified"], false, "{claims}");
    assert_eq!(jwt_claims(before.id_token())["email_verified"], false);

    let confirmed = confirm_through(&app, &browser, &link).await;
    confirmed.assert_says(StatusCode::OK, "Email confirmed");

    let after = tokens_signing_in_as(&app, &app.new_browser(), &client, email, NEW_PASSWORD).await;
    let claims = userinfo_claims(&app, &after.access_token).await;
    assert_eq!(
        claims["email_verified"], true,
        "userinfo after confirming: {claims}"
    );
    assert_eq!(
        jwt_claims(after.id_token())["email_verified"],
        true,
        "the new ID token says the email is verified"
    );

    // The link is spent.
    open(&app, &browser, link.as_str())
        .await
        .assert_says(StatusCode::BAD_REQUEST, EXPIRED_LINK);

    let audit = audit_actions(&app).await;
    for action in ["user.registered", "user.email_verified"] {
        assert!(
            audit.iter().any(|l| l.action == action),
            "the audit log records {action}: {audit:?}"
        );
    }
}

#[tokio::test]
async fn registering_an_existing_email_answers_the_same_and_only_tells_the_owner() {
    let _turn = share_the_machine().await;
    let (app, sink) = spawn_app_with_mail(|c| {
        c.env("TESSERA_SELF_REGISTRATION", "true");
    })
    .await;
    let owner = app.add_user("gus@example.test").await;
    let newcomer = "hana@example.test";

    let fresh = register(&app, &app.new_browser(), "Hana", newcomer, NEW_PASSWORD).await;
    let taken = register(
        &app,
        &app.new_browser(),
        "Mallory",
        &owner.email,
        NEW_PASSWORD,
    )
    .await;

    fresh.assert_says(StatusCode::OK, "Check your email");
    assert_eq!(taken.status, fresh.status);
    assert_eq!(
        taken.text().replace(&owner.email, "<email>"),
        fresh.text().replace(newcomer, "<email>"),
        "registering an existing email reads exactly like registering a new one"
    );

    mailed_confirmation_link(&app, &sink, newcomer).await;
    let note = sink.next_mail_to(&owner.email).await;
    assert_eq!(note.subject, "You already have an account", "{}", note.body);
    assert!(
        note.links_starting_with(&format!("{}/verify-email", app.issuer))
            .is_empty(),
        "the owner's note carries no confirmation link:\n{}",
        note.body
    );

    // Nothing else changed: the owner's password stands, the intruder's does not.
    assert_sign_in_works(&app, &app.new_browser(), &owner.email, &owner.password).await;
    assert_sign_in_refused(&app, &app.new_browser(), &owner.email, NEW_PASSWORD).await;
    assert_eq!(
        sink.received_by(&owner.email).len(),
        1,
        "the owner got one note and nothing else: {:?}",
        subjects(&sink.received_by(&owner.email))
    );
}

#[tokio::test]
async fn without_self_registration_the_register_page_is_not_found_and_not_offered() {
    let _turn = share_the_machine().await;
    let app = spawn_app().await;

    let login = open(&app, &app.client, "/login").await;
    assert!(
        !login.says("Create an account") && !login.links_to("/register", "Create an account"),
        "the sign-in page does not offer registration:\n{}",
        login.html
    );
    expect_error_page(app.get("/register").await, StatusCode::NOT_FOUND).await;
    let csrf = input_value(&login.html, "csrf_token").expect("a csrf_token");
    let resp = app
        .client
        .post(app.url("/register"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("name", "Ivy"),
            ("email", "ivy@example.test"),
            ("password", NEW_PASSWORD),
        ])
        .send()
        .await
        .expect("POST /register");
    expect_error_page(resp, StatusCode::NOT_FOUND).await;
    assert_sign_in_refused(&app, &app.new_browser(), "ivy@example.test", NEW_PASSWORD).await;
}

#[tokio::test]
async fn a_signed_in_user_can_have_a_new_confirmation_link_sent() {
    let _turn = share_the_machine().await;
    let (app, sink) = spawn_app_with_mail(|_| {}).await;
    let user = app.add_user("jon@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let browser = app.new_browser();
    app.sign_in_to_account_in(&browser, &user).await;

    let account = open(&app, &browser, "/account").await;
    account.assert_says(StatusCode::OK, "Your email address is not confirmed yet.");
    let sent =
        read_page(submit(&app, &browser, &account, "/account/verify-email", &[]).await).await;
    sent.assert_says(
        StatusCode::OK,
        "We sent a confirmation link to jon@example.test.",
    );
    let link = mailed_confirmation_link(&app, &sink, &user.email).await;
    confirm_through(&app, &browser, &link)
        .await
        .assert_says(StatusCode::OK, "Email confirmed");

    let account = open(&app, &browser, "/account").await;
    assert!(
        !account.says("not confirmed"),
        "the account page no longer asks to confirm: {}",
        account.text()
    );
    let tokens = app.tokens_for_in(&app.new_browser(), &client, &user).await;
    assert_eq!(
        userinfo_claims(&app, &tokens.access_token).await["email_verified"],
        true
    );
}
