//! The main flow, as a real relying party lives it: the `openidconnect` crate
//! discovers Tessera, sends a browser to sign in, redeems the code, verifies
//! the ID token, reads userinfo, refreshes, introspects and revokes.

use std::collections::BTreeSet;

use jsonwebtoken::Algorithm;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    IntrospectionUrl, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl,
    RequestTokenError, Scope, TokenIntrospectionResponse, TokenResponse,
};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// How the relying party's token requests authenticate, and who introspects for it.
#[derive(Clone, Copy)]
enum RelyingParty<'a> {
    /// client_secret_basic; introspects its own tokens.
    Confidential,
    /// `none` + PKCE; a resource server introspects its tokens.
    Public {
        resource_server: &'a RegisteredClient,
    },
}

/// The whole life of a sign-in, driven by the `openidconnect` crate (revocation
/// excepted: it insists on an https revocation endpoint).
async fn relying_party_signs_in(
    app: &TestApp,
    client: &RegisteredClient,
    user: &TestUser,
    kind: RelyingParty<'_>,
) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("build the relying party's HTTP client");

    // Discovery.
    let issuer = IssuerUrl::new(app.issuer.clone()).expect("the issuer is a URL");
    let metadata = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .expect("discovery succeeds");
    assert_eq!(metadata.issuer().as_str(), app.issuer);
    let document = app.discovery().await;
    let endpoint = |name: &str| {
        document[name]
            .as_str()
            .unwrap_or_else(|| panic!("discovery names the {name}: {document}"))
            .to_owned()
    };

    let rp = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client.id.clone()),
        client.secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(client.redirect_uri.clone()).expect("a redirect URL"))
    .set_auth_type(AuthType::BasicAuth)
    .set_introspection_url(
        IntrospectionUrl::new(endpoint("introspection_endpoint")).expect("an introspection URL"),
    );

    // The authorization request, with PKCE S256, state and nonce.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, state, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    // The browser follows it, signs in and comes back with a code.
    let resp = app
        .client
        .get(authorize_url.as_str())
        .send()
        .await
        .expect("GET the authorization URL");
    let page = expect_sign_in_page(resp).await;
    let resp = app.post_login(&page, &user.email, &user.password).await;
    let callback = expect_callback(&resp, &client.redirect_uri);
    assert_eq!(
        callback.param("state").as_deref(),
        Some(state.secret().as_str()),
        "the state comes back"
    );
    assert_eq!(
        callback.param("iss").as_deref(),
        Some(app.issuer.as_str()),
        "the issuer is named"
    );
    let code = callback.code();

    // The code becomes tokens.
    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .expect("the token endpoint is known")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the code is exchanged for tokens");
    let first_refresh_token = tokens
        .refresh_token()
        .expect("a refresh token is issued")
        .clone();

    // The ID token verifies: ES256 signature against the JWKS, issuer, audience, nonce.
    let id_token = tokens
        .id_token()
        .expect("an ID token is issued for the openid scope");
    let id_token_verifier = rp
        .id_token_verifier()
        .set_allowed_algs([CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let claims = id_token
        .claims(&id_token_verifier, &nonce)
        .expect("the ID token verifies");
    assert_eq!(
        id_token.signing_alg().expect("signed"),
        &CoreJwsSigningAlgorithm::EcdsaP256Sha256
    );
    assert_eq!(
        claims.subject().as_str(),
        user.id,
        "the subject is the user"
    );
    assert_eq!(
        claims.email().map(|e| e.as_str()),
        Some(user.email.as_str())
    );
    if let Some(expected) = claims.access_token_hash() {
        let actual = AccessTokenHash::from_token(
            tokens.access_token(),
            id_token.signing_alg().expect("signed"),
            id_token
                .signing_key(&id_token_verifier)
                .expect("the signing key is published"),
        )
        .expect("hash the access token");
        assert_eq!(&actual, expected, "at_hash matches the access token");
    }
    // A forged nonce is noticed.
    assert!(
        id_token
            .claims(&id_token_verifier, &Nonce::new("another".into()))
            .is_err()
    );

    // Userinfo answers for the same subject.
    let info: CoreUserInfoClaims = rp
        .user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .expect("the userinfo endpoint is known")
        .request_async(&http)
        .await
        .expect("userinfo answers");
    assert_eq!(info.email().map(|e| e.as_str()), Some(user.email.as_str()));
    assert_eq!(
        info.name().and_then(|n| n.get(None)).map(|n| n.as_str()),
        user.name.as_deref()
    );

    // A refresh rotates the refresh token and issues a new access token.
    let refreshed = rp
        .exchange_refresh_token(&first_refresh_token)
        .expect("the token endpoint is known")
        .request_async(&http)
        .await
        .expect("the refresh token works");
    let second_refresh_token = refreshed
        .refresh_token()
        .expect("a rotated refresh token")
        .clone();
    assert_ne!(
        second_refresh_token.secret(),
        first_refresh_token.secret(),
        "refresh tokens rotate"
    );
    assert_ne!(
        refreshed.access_token().secret(),
        tokens.access_token().secret()
    );

    // Introspection says the new access token is live and whose it is.
    let (rp, http) = (&rp, &http);
    let is_active = |token: String| async move {
        match kind {
            RelyingParty::Confidential => {
                let answer = rp
                    .introspect(&openidconnect::AccessToken::new(token))
                    .request_async(http)
                    .await
                    .expect("introspection answers");
                if answer.active() {
                    assert_eq!(answer.sub(), Some(user.id.as_str()));
                    assert_eq!(
                        answer.client_id().map(|c| c.as_str()),
                        Some(client.id.as_str())
                    );
                }
                answer.active()
            }
            RelyingParty::Public { resource_server } => {
                let answer = app.introspect(&resource_server.auth(), &token).await;
                if answer["active"] == true {
                    assert_eq!(answer["sub"], user.id.as_str());
                    assert_eq!(answer["client_id"], client.id.as_str());
                }
                answer["active"] == true
            }
        }
    };
    assert!(
        is_active(refreshed.access_token().secret().clone()).await,
        "a fresh access token is active"
    );

    // Revoking the refresh token ends it. (Raw HTTP: the crate refuses a
    // revocation endpoint that is not https, and the test server is plain http.)
    let revocation_endpoint = endpoint("revocation_endpoint");
    assert_eq!(revocation_endpoint, app.url("/revoke"));
    let resp = app
        .revoke(
            &client.auth(),
            second_refresh_token.secret(),
            Some("refresh_token"),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "revocation succeeds");
    let refused = rp
        .exchange_refresh_token(&second_refresh_token)
        .expect("the token endpoint is known")
        .request_async(http)
        .await
        .expect_err("a revoked refresh token no longer works");
    match refused {
        RequestTokenError::ServerResponse(error) => {
            assert_eq!(error.error(), &CoreErrorResponseType::InvalidGrant)
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }

    // Revoking the access token makes it inactive.
    let resp = app
        .revoke(
            &client.auth(),
            refreshed.access_token().secret(),
            Some("access_token"),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "revocation succeeds");
    assert!(
        !is_active(refreshed.access_token().secret().clone()).await,
        "a revoked access token is inactive"
    );
}

#[tokio::test]
async fn a_confidential_relying_party_signs_a_user_in_with_openid_connect() {
    let app = spawn_app().await;
    let user = app
        .add_user_with("ada@example.test", Some("Ada Lovelace"), &[])
        .await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;

    relying_party_signs_in(&app, &client, &user, RelyingParty::Confidential).await;
}

#[tokio::test]
async fn a_public_relying_party_signs_a_user_in_with_pkce_and_no_secret() {
    let app = spawn_app().await;
    let user = app
        .add_user_with("ada@example.test", Some("Ada Lovelace"), &[])
        .await;
    let client = app
        .add_client(ClientSpec::first_party("spa").public())
        .await;
    assert_eq!(client.secret, None);
    let resource_server = app.add_client(ClientSpec::service("resource-server")).await;

    relying_party_signs_in(
        &app,
        &client,
        &user,
        RelyingParty::Public {
            resource_server: &resource_server,
        },
    )
    .await;
}

#[tokio::test]
async fn the_discovery_document_describes_the_provider() {
    let app = spawn_app().await;
    let doc = app.discovery().await;
    let issuer = app.issuer.as_str();

    assert_eq!(doc["issuer"], issuer);
    for (field, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("jwks_uri", "/jwks.json"),
        ("userinfo_endpoint", "/userinfo"),
        ("revocation_endpoint", "/revoke"),
        ("introspection_endpoint", "/introspect"),
        ("end_session_endpoint", "/logout"),
    ] {
        assert_eq!(doc[field], format!("{issuer}{path}"), "{field} in {doc}");
    }
    let list = |field: &str| -> BTreeSet<String> {
        doc[field]
            .as_array()
            .unwrap_or_else(|| panic!("{field} is a list: {doc}"))
            .iter()
            .map(|v| v.as_str().expect("a string").to_owned())
            .collect()
    };
    let set =
        |items: &[&str]| -> BTreeSet<String> { items.iter().map(|s| s.to_string()).collect() };

    assert_eq!(
        list("code_challenge_methods_supported"),
        set(&["S256"]),
        "only S256, never plain"
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(
        list("response_types_supported"),
        set(&["code"]),
        "the code flow only"
    );
    assert!(list("id_token_signing_alg_values_supported").contains("ES256"));
    assert!(list("grant_types_supported").is_superset(&set(&[
        "authorization_code",
        "refresh_token",
        "client_credentials"
    ])));
    assert_eq!(
        list("token_endpoint_auth_methods_supported"),
        set(&["client_secret_basic", "client_secret_post", "none"])
    );
    assert!(list("scopes_supported").is_superset(&set(&[
        "openid",
        "profile",
        "email",
        "offline_access"
    ])));
}

#[tokio::test]
async fn the_jwks_is_cacheable_revalidates_with_its_etag_and_holds_no_private_key() {
    let app = spawn_app().await;

    let resp = app
        .backchannel
        .get(app.url("/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cache_control = header_str(resp.headers(), "cache-control")
        .unwrap_or("")
        .to_owned();
    assert!(
        cache_control.contains("max-age"),
        "the JWKS may be cached: Cache-Control is {cache_control:?}"
    );
    let etag = header_str(resp.headers(), "etag")
        .expect("the JWKS has an ETag")
        .to_owned();
    let body: Value = resp.json().await.unwrap();

    let keys = body["keys"].as_array().expect("a `keys` list");
    assert!(!keys.is_empty(), "at least one signing key is published");
    for key in keys {
        assert!(key["kid"].is_string(), "every key has a kid: {key}");
        assert_eq!(key["kty"], "EC", "ES256 keys by default: {key}");
        assert_eq!(key["crv"], "P-256", "{key}");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(
                key.get(private).is_none(),
                "the JWKS leaks private key material `{private}`: {key}"
            );
        }
    }

    let revalidated = app
        .backchannel
        .get(app.url("/jwks.json"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(
        revalidated.status(),
        StatusCode::NOT_MODIFIED,
        "a matching ETag gets 304"
    );
    assert!(
        revalidated.bytes().await.unwrap().is_empty(),
        "a 304 has no body"
    );

    let stale = app
        .backchannel
        .get(app.url("/jwks.json"))
        .header("if-none-match", "\"not-the-current-etag\"")
        .send()
        .await
        .unwrap();
    assert_eq!(
        stale.status(),
        StatusCode::OK,
        "another ETag gets the full set"
    );
}

#[tokio::test]
async fn a_users_access_token_is_an_at_jwt_naming_the_user_client_session_and_roles() {
    let app = spawn_app().await;
    let user = app
        .add_user_with(
            "grace@example.test",
            Some("Grace Hopper"),
            &["finance", "auditor"],
        )
        .await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;

    let tokens = app.tokens_for(&client, &user).await;

    let header = jwt_header(&tokens.access_token);
    assert_eq!(
        header.typ.as_deref(),
        Some("at+jwt"),
        "RFC 9068 access token type"
    );
    assert_eq!(header.alg, Algorithm::ES256);
    let kid = header.kid.expect("the access token names its key");
    assert!(
        app.published_kids().await.contains(&kid),
        "the signing key is published"
    );

    let claims = app
        .verify_jwt(&tokens.access_token, &app.issuer)
        .await
        .expect("the access token verifies");
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(
        claims["sub"],
        user.id.as_str(),
        "the subject is the id `tessera user add` printed"
    );
    assert_eq!(
        audiences(&claims),
        vec![app.issuer.clone()],
        "without a registered audience the issuer is the audience"
    );
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_eq!(
        scope_set(claims["scope"].as_str().expect("a scope string")),
        scope_set(DEFAULT_SCOPE)
    );
    assert_eq!(tokens.scopes(), scope_set(DEFAULT_SCOPE));
    assert!(
        claims["jti"].as_str().is_some_and(|j| !j.is_empty()),
        "a jti: {claims}"
    );
    assert!(
        claims["sid"].as_str().is_some_and(|s| !s.is_empty()),
        "a user token names its session: {claims}"
    );
    let roles: BTreeSet<&str> = claims["roles"]
        .as_array()
        .unwrap_or_else(|| panic!("roles are listed: {claims}"))
        .iter()
        .map(|r| r.as_str().expect("a role name"))
        .collect();
    assert_eq!(roles, BTreeSet::from(["finance", "auditor"]));

    let iat = claims["iat"].as_i64().expect("iat");
    let exp = claims["exp"].as_i64().expect("exp");
    assert_eq!(exp - iat, 600, "access tokens live 10 minutes by default");
    assert!(
        (590..=600).contains(&tokens.expires_in),
        "expires_in is {}",
        tokens.expires_in
    );

    let id_claims = jwt_claims(tokens.id_token());
    assert_eq!(id_claims["sub"], user.id.as_str());
    assert_eq!(
        audiences(&id_claims),
        vec![client.id.clone()],
        "the ID token is for the client"
    );
}

#[tokio::test]
async fn userinfo_reveals_email_and_name_only_for_the_scopes_granted() {
    let app = spawn_app().await;
    let user = app
        .add_user_with("ada@example.test", Some("Ada Lovelace"), &[])
        .await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;

    for (scope, shows_email, shows_name) in [
        ("openid", false, false),
        ("openid email", true, false),
        ("openid profile", false, true),
    ] {
        let request = AuthRequest::new(&client).with("scope", scope);
        let tokens = app.tokens_for_request(&client, &request, &user).await;
        assert_eq!(tokens.scopes(), scope_set(scope));
        let info = expect_json(app.userinfo(&tokens.access_token).await, StatusCode::OK).await;

        assert_eq!(info["sub"], user.id.as_str(), "{scope}: {info}");
        if shows_email {
            assert_eq!(info["email"], user.email.as_str(), "{scope}: {info}");
            assert!(info["email_verified"].is_boolean(), "{scope}: {info}");
        } else {
            assert!(
                info.get("email").is_none(),
                "{scope} must not reveal the email: {info}"
            );
            assert!(info.get("email_verified").is_none(), "{scope}: {info}");
        }
        if shows_name {
            assert_eq!(info["name"], "Ada Lovelace", "{scope}: {info}");
        } else {
            assert!(
                info.get("name").is_none(),
                "{scope} must not reveal the name: {info}"
            );
        }
    }
}

#[tokio::test]
async fn userinfo_refuses_a_missing_or_forged_token_with_a_bearer_challenge() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let tokens = app.tokens_for(&client, &user).await;

    let missing = app
        .backchannel
        .get(app.url("/userinfo"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let challenge = header_str(missing.headers(), "www-authenticate")
        .expect("a challenge")
        .to_owned();
    assert!(challenge.starts_with("Bearer"), "{challenge}");

    // The same token with its payload tampered with, and plain garbage.
    let mut parts: Vec<String> = tokens.access_token.split('.').map(str::to_owned).collect();
    let mut claims = jwt_claims(&tokens.access_token);
    claims["sub"] = Value::from("someone-else");
    parts[1] = base64_url(&serde_json::to_vec(&claims).unwrap());
    let tampered = parts.join(".");

    for token in [tampered.as_str(), "not-a-token", "a.b.c"] {
        let resp = app.userinfo(token).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "token {token}");
        let challenge = header_str(resp.headers(), "www-authenticate")
            .expect("a challenge")
            .to_owned();
        assert!(
            challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_token\""),
            "WWW-Authenticate is {challenge:?}"
        );
    }

    // The genuine token still works.
    assert_eq!(
        app.userinfo(&tokens.access_token).await.status(),
        StatusCode::OK
    );
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn a_third_party_client_gets_a_code_only_after_the_user_allows_it() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::new("partner")).await;
    let request = AuthRequest::new(&client);

    let page = expect_sign_in_page(app.authorize(&request).await).await;
    let resp = app.post_login(&page, &user.email, &user.password).await;
    let consent = expect_consent_page(resp).await;

    let resp = app.post_consent(&consent, "allow").await;
    let callback = expect_callback(&resp, &client.redirect_uri);
    app.assert_state_and_issuer(&callback, &request);
    let tokens = app.exchange_code(&client, &request, &callback.code()).await;
    assert_eq!(jwt_claims(&tokens.access_token)["sub"], user.id.as_str());
}

#[tokio::test]
async fn a_user_who_denies_consent_is_sent_back_with_access_denied() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::new("partner")).await;
    let request = AuthRequest::new(&client);

    let page = expect_sign_in_page(app.authorize(&request).await).await;
    let consent =
        expect_consent_page(app.post_login(&page, &user.email, &user.password).await).await;

    let resp = app.post_consent(&consent, "deny").await;
    expect_error_callback(&app, &resp, &request, "access_denied");
}

#[tokio::test]
async fn without_the_openid_scope_no_id_token_is_issued() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let request = AuthRequest::new(&client).with("scope", "profile");

    let tokens = app.tokens_for_request(&client, &request, &user).await;

    assert_eq!(
        tokens.id_token, None,
        "an OAuth-only grant gets no ID token"
    );
    assert_eq!(tokens.scopes(), scope_set("profile"));
    app.verify_jwt(&tokens.access_token, &app.issuer)
        .await
        .expect("the access token verifies");
}

#[tokio::test]
async fn a_client_without_the_refresh_grant_gets_no_refresh_token() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app
        .add_client(ClientSpec::first_party("webapp").grant("authorization_code"))
        .await;
    let request = AuthRequest::new(&client).with("scope", "openid profile email");

    let tokens = app.tokens_for_request(&client, &request, &user).await;

    assert_eq!(tokens.refresh_token, None);
    assert!(tokens.id_token.is_some());
}

#[tokio::test]
async fn a_user_token_is_for_the_clients_first_audience_or_the_registered_resource_it_asks_for() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app
        .add_client(
            ClientSpec::first_party("webapp")
                .audience("https://api.example.test")
                .audience("https://reports.example.test"),
        )
        .await;

    let tokens = app.tokens_for(&client, &user).await;
    let claims = app
        .verify_jwt(&tokens.access_token, "https://api.example.test")
        .await
        .expect("verifies");
    assert_eq!(
        audiences(&claims),
        vec!["https://api.example.test".to_owned()],
        "the first audience by default"
    );

    let request = AuthRequest::new(&client).with("resource", "https://reports.example.test");
    let code = app.obtain_code(&request, &user).await;
    let redirect_uri = request.redirect_uri();
    let resp = app
        .token(
            &client.auth(),
            &[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect_uri.as_str()),
                ("code_verifier", request.verifier.as_str()),
                ("resource", "https://reports.example.test"),
            ],
        )
        .await;
    let tokens = expect_tokens(resp).await;
    let claims = app
        .verify_jwt(&tokens.access_token, "https://reports.example.test")
        .await
        .expect("verifies");
    assert_eq!(
        audiences(&claims),
        vec!["https://reports.example.test".to_owned()]
    );
}
