//! The operator's client actions on the engine, with a ManualClock: validation, the secret
//! overlap's edges, and what disabling does to tokens already handed out.

use super::*;
use crate::oauth::introspect::introspect;
use crate::testkit::{Kit, refresh_token};

const CLI: Actor = Actor::Cli;

fn service() -> ClientSettings {
    ClientSettings {
        grants: vec!["client_credentials".into()],
        scopes: vec!["invoices.read".into()],
        audiences: vec!["https://api.erp.example".into()],
        ..Default::default()
    }
}

fn basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

async fn token_for(
    kit: &Kit,
    id: &str,
    secret: &str,
) -> Result<crate::oauth::tokens::TokenResponse, crate::oauth::error::OAuthError> {
    kit.token(
        Some(&basic(id, secret)),
        &[("grant_type", "client_credentials")],
    )
    .await
}

#[tokio::test]
async fn registration_checks_grants_uris_scopes_and_secrets_and_fills_in_defaults() {
    let kit = Kit::new().await;
    let p = &kit.p;
    let invalid = |r: Result<Created, AdminError>| matches!(r, Err(AdminError::Invalid(_)));
    let web = |uris: &[&str]| ClientSettings {
        redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    assert!(invalid(
        create(p, &CLI, "erp", SecretChoice::Public, web(&[])).await
    ));
    for uri in [
        "http://erp.example/cb",
        "https://erp.example/cb#x",
        "/cb",
        "javascript:alert(1)",
    ] {
        assert!(
            invalid(create(p, &CLI, "erp", SecretChoice::Public, web(&[uri])).await),
            "{uri}"
        );
    }
    assert!(invalid(
        create(p, &CLI, "svc", SecretChoice::Public, service()).await
    ));
    let mut admin_public = web(&["https://erp.example/cb"]);
    admin_public.scopes = vec!["openid".into(), ADMIN_SCOPE.into()];
    assert!(invalid(
        create(p, &CLI, "erp", SecretChoice::Public, admin_public).await
    ));
    let short = SecretChoice::Given(SecretString::new("x".repeat(MIN_CLIENT_SECRET_CHARS - 1)));
    assert!(invalid(create(p, &CLI, "svc", short, service()).await));
    assert!(invalid(
        create(p, &CLI, "bad id!", SecretChoice::Generate, service()).await
    ));
    let mut grant = service();
    grant.grants = vec!["password".into()];
    assert!(invalid(
        create(p, &CLI, "svc", SecretChoice::Generate, grant).await
    ));

    let made = create(
        p,
        &CLI,
        "erp",
        SecretChoice::Public,
        web(&["https://erp.example/cb", "https://erp.example/cb"]),
    )
    .await
    .unwrap();
    assert!(made.secret.is_none());
    assert!(made.client.public);
    assert_eq!(made.client.redirect_uris, vec!["https://erp.example/cb"]);
    assert_eq!(
        made.client.grants,
        vec!["authorization_code", "refresh_token"]
    );
    assert_eq!(made.client.scopes, DEFAULT_SCOPES);
    assert!(matches!(
        create(
            p,
            &CLI,
            "erp",
            SecretChoice::Public,
            web(&["https://erp.example/cb"])
        )
        .await,
        Err(AdminError::Conflict(_))
    ));
    let svc = create(p, &CLI, "svc", SecretChoice::Generate, service())
        .await
        .unwrap();
    let secret = svc.secret.expect("a generated secret is shown once");
    assert!(token_for(&kit, "svc", secret.expose()).await.is_ok());
    assert_eq!(
        list(p)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        ["erp", "svc"]
    );
}

#[tokio::test]
async fn an_update_replaces_the_settings_and_keeps_a_public_client_public() {
    let kit = Kit::new().await;
    let p = &kit.p;
    kit.public_client("webapp").await;
    let mut s = ClientSettings {
        redirect_uris: vec!["https://erp.example/new".into()],
        require_mfa: true,
        ..Default::default()
    };
    let view = update(p, &CLI, "webapp", s.clone()).await.unwrap();
    assert_eq!(view.redirect_uris, vec!["https://erp.example/new"]);
    assert!(view.require_mfa && view.public);
    // Read back through the protocol's own (cached) lookup: the change is seen at once.
    let seen = p.client("webapp").await.unwrap().unwrap();
    assert_eq!(seen.redirect_uris, vec!["https://erp.example/new"]);
    s.grants = vec!["client_credentials".into()];
    assert!(matches!(
        update(p, &CLI, "webapp", s.clone()).await,
        Err(AdminError::Invalid(_))
    ));
    assert!(matches!(
        update(p, &CLI, "nobody", s).await,
        Err(AdminError::NotFound(_))
    ));
    assert!(matches!(
        rotate_secret(p, &CLI, "webapp", 60).await,
        Err(AdminError::Invalid(_))
    ));
}

#[tokio::test]
async fn a_rotated_secrets_predecessor_works_until_the_overlap_ends_and_not_a_second_after() {
    let kit = Kit::new().await;
    let p = &kit.p;
    kit.service_client("svc", "the-first-secret-of-the-service-xx")
        .await;
    let old = "the-first-secret-of-the-service-xx";
    let rotated = rotate_secret(p, &CLI, "svc", 3600).await.unwrap();
    assert_eq!(rotated.previous_valid_until, kit.now() + 3600);
    assert_eq!(
        show(p, "svc").await.unwrap().previous_secret_valid_until,
        Some(kit.now() + 3600)
    );
    assert!(
        token_for(&kit, "svc", rotated.secret.expose())
            .await
            .is_ok()
    );
    kit.advance(3599);
    assert!(
        token_for(&kit, "svc", old).await.is_ok(),
        "one second before the end"
    );
    kit.advance(1);
    assert!(token_for(&kit, "svc", old).await.is_err(), "at the end");
    assert!(
        token_for(&kit, "svc", rotated.secret.expose())
            .await
            .is_ok()
    );
    assert_eq!(
        show(p, "svc").await.unwrap().previous_secret_valid_until,
        None
    );

    // A second rotation during an overlap ends the oldest secret at once.
    let second = rotate_secret(p, &CLI, "svc", 3600).await.unwrap();
    let third = rotate_secret(p, &CLI, "svc", 3600).await.unwrap();
    assert!(
        token_for(&kit, "svc", rotated.secret.expose())
            .await
            .is_err()
    );
    assert!(token_for(&kit, "svc", second.secret.expose()).await.is_ok());
    assert!(token_for(&kit, "svc", third.secret.expose()).await.is_ok());
    // No overlap: the old secret ends now.
    let fourth = rotate_secret(p, &CLI, "svc", 0).await.unwrap();
    assert!(token_for(&kit, "svc", third.secret.expose()).await.is_err());
    assert!(token_for(&kit, "svc", fourth.secret.expose()).await.is_ok());
    for bad in [-1, MAX_SECRET_OVERLAP + 1] {
        assert!(matches!(
            rotate_secret(p, &CLI, "svc", bad).await,
            Err(AdminError::Invalid(_))
        ));
    }
}

#[tokio::test]
async fn disabling_a_client_stops_its_refresh_tokens_and_access_tokens_at_once_and_enabling_does_not_revive_them()
 {
    let kit = Kit::new().await;
    let p = &kit.p;
    let signed_in = kit.signed_in().await;
    let rs = kit
        .service_client("rs", "the-resource-servers-secret-xxxxxx")
        .await;
    let auth = basic(&rs.id, "the-resource-servers-secret-xxxxxx");
    let access = signed_in.tokens.access_token.expose().to_string();
    let active = |token: String| {
        let auth = auth.clone();
        async move {
            let body = format!("token={token}");
            introspect(p, Some(&auth), &body).await.unwrap()["active"] == true
        }
    };
    let body = access.clone();
    assert!(active(body.clone()).await);

    let revoked = disable(p, &CLI, &signed_in.client.id).await.unwrap();
    assert_eq!(revoked, 1);
    assert!(
        !active(body.clone()).await,
        "its access token introspects inactive"
    );
    assert!(
        kit.refresh(&signed_in.client, &signed_in.refresh_token())
            .await
            .is_err()
    );
    assert!(
        p.client(&signed_in.client.id).await.unwrap().is_none(),
        "it gets no token"
    );
    assert!(
        show(p, &signed_in.client.id)
            .await
            .unwrap()
            .disabled_at
            .is_some()
    );

    kit.advance(1);
    enable(p, &CLI, &signed_in.client.id).await.unwrap();
    assert!(!active(body).await, "what it had stays revoked");
    assert!(
        kit.refresh(&signed_in.client, &signed_in.refresh_token())
            .await
            .is_err()
    );
    // New tokens work again.
    let fresh = kit.code(&signed_in.client, &signed_in.session).await;
    let tokens = kit.redeem(&signed_in.client, &fresh).await.unwrap();
    assert!(active(tokens.access_token.expose().to_string()).await);
    assert!(
        kit.refresh(&signed_in.client, &refresh_token(&tokens))
            .await
            .is_ok()
    );
    assert!(matches!(
        disable(p, &CLI, "nobody").await,
        Err(AdminError::NotFound(_))
    ));
}
