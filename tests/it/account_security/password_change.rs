//! Changing the password while signed in.

use super::*;

#[tokio::test]
async fn changing_the_password_keeps_this_session_and_signs_out_the_other_devices() {
    let _turn = share_the_machine().await;
    let app = spawn_app().await;
    let user = app.add_user("erin@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let laptop = app.new_browser();
    let phone = app.new_browser();
    let laptop_tokens = app.tokens_for_in(&laptop, &client, &user).await;
    let phone_tokens = app.tokens_for_in(&phone, &client, &user).await;

    // A wrong current password changes nothing.
    let wrong = fill_in(
        &app,
        &laptop,
        "/account/password",
        "/account/password",
        &[
            ("current", WRONG_PASSWORD),
            ("password", NEW_PASSWORD),
            ("confirm", NEW_PASSWORD),
        ],
    )
    .await;
    wrong.assert_says(
        StatusCode::UNAUTHORIZED,
        "The current password is not right.",
    );
    assert!(
        app.is_signed_in_in(&phone, &client).await,
        "a refused change signs nobody out"
    );
    assert_sign_in_refused(&app, &app.new_browser(), &user.email, NEW_PASSWORD).await;

    let changed = fill_in(
        &app,
        &laptop,
        "/account/password",
        "/account/password",
        &[
            ("current", &user.password),
            ("password", NEW_PASSWORD),
            ("confirm", NEW_PASSWORD),
        ],
    )
    .await;
    changed.assert_says(
        StatusCode::OK,
        "Your password was changed. Your other devices were signed out.",
    );

    // This device stays signed in, and its app keeps working.
    open(&app, &laptop, "/account")
        .await
        .assert_says(StatusCode::OK, "Your account");
    assert!(app.is_signed_in_in(&laptop, &client).await);
    let refreshed = expect_tokens(
        app.refresh(&client.auth(), laptop_tokens.refresh_token())
            .await,
    )
    .await;
    app.assert_active(
        &client,
        &refreshed.access_token,
        "the laptop's new access token",
    )
    .await;

    // The phone is signed out, in the browser and in the app.
    assert!(
        !app.is_signed_in_in(&phone, &client).await,
        "the other device's browser is signed out"
    );
    app.assert_refresh_refused(&client, phone_tokens.refresh_token(), "the phone's app")
        .await;
    app.assert_inactive(
        &client,
        &phone_tokens.access_token,
        "the phone's access token",
    )
    .await;

    assert_sign_in_refused(&app, &app.new_browser(), &user.email, &user.password).await;
    let changed_user = with_password(&user, NEW_PASSWORD);
    app.tokens_for_in(&app.new_browser(), &client, &changed_user)
        .await;
}
