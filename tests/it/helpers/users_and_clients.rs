//! Test users and OAuth clients, registered through the command line, and how a client
//! authenticates to the back-channel endpoints.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{CliOutput, TestApp};

/// The password every test user gets unless a test says otherwise.
pub const PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    /// `tessera user add` with the default password and no name or roles.
    pub async fn add_user(&self, email: &str) -> TestUser {
        self.add_user_with(email, None, &[]).await
    }

    pub async fn add_user_with(&self, email: &str, name: Option<&str>, roles: &[&str]) -> TestUser {
        let mut args = vec!["user", "add", "--email", email];
        if let Some(name) = name {
            args.extend(["--name", name]);
        }
        for role in roles {
            args.extend(["--role", role]);
        }
        args.push("--password-stdin");
        let out = self.cli(&args, Some(PASSWORD)).await;
        out.assert_success("tessera user add");
        let id = out.stdout.trim().to_owned();
        assert!(
            !id.is_empty() && !id.contains(char::is_whitespace),
            "`tessera user add` should print just the new user's id, printed {:?}",
            out.stdout
        );
        TestUser {
            id,
            email: email.to_owned(),
            password: PASSWORD.to_owned(),
            name: name.map(str::to_owned),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    /// The arguments `tessera client add` gets for a spec.
    fn client_add_args(spec: &ClientSpec) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "client".into(),
            "add".into(),
            "--id".into(),
            spec.id.clone(),
        ];
        match &spec.secret {
            SecretChoice::Generated => {}
            SecretChoice::Supplied(_) => args.push("--secret-stdin".into()),
            SecretChoice::Public => args.push("--public".into()),
        }
        for (flag, values) in [
            ("--redirect-uri", &spec.redirect_uris),
            (
                "--post-logout-redirect-uri",
                &spec.post_logout_redirect_uris,
            ),
            ("--grant", &spec.grants),
            ("--scope", &spec.scopes),
            ("--audience", &spec.audiences),
        ] {
            for value in values {
                args.push(flag.into());
                args.push(value.clone());
            }
        }
        if spec.first_party {
            args.push("--first-party".into());
        }
        if let Some(uri) = &spec.backchannel_logout_uri {
            args.push("--backchannel-logout-uri".into());
            args.push(uri.clone());
        }
        if spec.require_mfa {
            args.push("--require-mfa".into());
        }
        args
    }

    /// Runs `tessera client add` for a spec and returns its raw output.
    pub async fn try_add_client(&self, spec: &ClientSpec) -> CliOutput {
        let args = Self::client_add_args(spec);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stdin = match &spec.secret {
            SecretChoice::Supplied(secret) => Some(secret.as_str()),
            _ => None,
        };
        self.cli(&args, stdin).await
    }

    /// Registers a client with `tessera client add`.
    pub async fn add_client(&self, spec: ClientSpec) -> RegisteredClient {
        let out = self.try_add_client(&spec).await;
        out.assert_success("tessera client add");
        let secret = match &spec.secret {
            SecretChoice::Generated => Some(
                printed_client_secret(&out.stdout).unwrap_or_else(|| {
                    panic!(
                        "`tessera client add` without a secret should print `client_secret: <secret>`, printed:\n{}",
                        out.stdout
                    )
                }),
            ),
            SecretChoice::Supplied(secret) => Some(secret.clone()),
            SecretChoice::Public => None,
        };
        RegisteredClient {
            id: spec.id.clone(),
            secret,
            redirect_uri: spec.redirect_uris.first().cloned().unwrap_or_default(),
            post_logout_redirect_uri: spec.post_logout_redirect_uris.first().cloned(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone)]
enum SecretChoice {
    Generated,
    Supplied(String),
    Public,
}

/// What `tessera client add` is asked to register.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    id: String,
    secret: SecretChoice,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    grants: Vec<String>,
    scopes: Vec<String>,
    audiences: Vec<String>,
    first_party: bool,
    require_mfa: bool,
    backchannel_logout_uri: Option<String>,
}

impl ClientSpec {
    /// A confidential client whose secret the CLI generates, with one redirect
    /// URI `https://<id>.example.test/callback`, default grants and scopes.
    pub fn new(id: &str) -> Self {
        ClientSpec {
            id: id.to_owned(),
            secret: SecretChoice::Generated,
            redirect_uris: vec![format!("https://{id}.example.test/callback")],
            post_logout_redirect_uris: Vec::new(),
            grants: Vec::new(),
            scopes: Vec::new(),
            audiences: Vec::new(),
            first_party: false,
            require_mfa: false,
            backchannel_logout_uri: None,
        }
    }

    /// A first-party confidential client (no consent page).
    pub fn first_party(id: &str) -> Self {
        Self::new(id).trusted()
    }

    /// A confidential client for the client_credentials grant only.
    pub fn service(id: &str) -> Self {
        Self::new(id).grant("client_credentials")
    }

    pub fn trusted(mut self) -> Self {
        self.first_party = true;
        self
    }

    /// Everyone signing in to this client must use a second factor (`--require-mfa`).
    pub fn require_mfa(mut self) -> Self {
        self.require_mfa = true;
        self
    }

    pub fn public(mut self) -> Self {
        self.secret = SecretChoice::Public;
        self
    }

    pub fn secret(mut self, secret: &str) -> Self {
        self.secret = SecretChoice::Supplied(secret.to_owned());
        self
    }

    /// Adds a redirect URI after the default one.
    pub fn redirect_uri(mut self, uri: &str) -> Self {
        self.redirect_uris.push(uri.to_owned());
        self
    }

    pub fn post_logout_redirect_uri(mut self, uri: &str) -> Self {
        self.post_logout_redirect_uris.push(uri.to_owned());
        self
    }

    pub fn grant(mut self, grant: &str) -> Self {
        self.grants.push(grant.to_owned());
        self
    }

    pub fn scope(mut self, scope: &str) -> Self {
        self.scopes.push(scope.to_owned());
        self
    }

    /// `--backchannel-logout-uri`: where logout tokens are POSTed.
    pub fn backchannel_logout_uri(mut self, uri: &str) -> Self {
        self.backchannel_logout_uri = Some(uri.to_owned());
        self
    }

    pub fn audience(mut self, audience: &str) -> Self {
        self.audiences.push(audience.to_owned());
        self
    }
}

/// The `client_secret: <secret>` line `tessera client add` prints.
pub fn printed_client_secret(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("client_secret:"))
        .map(|secret| secret.trim().to_owned())
        .filter(|secret| !secret.is_empty())
}

/// A registered client as its relying party knows it.
#[derive(Debug, Clone)]
pub struct RegisteredClient {
    pub id: String,
    pub secret: Option<String>,
    /// The first registered redirect URI.
    pub redirect_uri: String,
    pub post_logout_redirect_uri: Option<String>,
}

impl RegisteredClient {
    /// client_secret_basic for confidential clients, `none` (client_id in the body) for public ones.
    pub fn auth(&self) -> ClientAuth {
        match &self.secret {
            Some(secret) => ClientAuth::Basic {
                id: self.id.clone(),
                secret: secret.clone(),
            },
            None => ClientAuth::Public {
                id: self.id.clone(),
            },
        }
    }

    /// client_secret_post.
    pub fn post_auth(&self) -> ClientAuth {
        ClientAuth::Post {
            id: self.id.clone(),
            secret: self.secret.clone().expect("a confidential client"),
        }
    }

    /// client_secret_basic with a wrong secret.
    pub fn wrong_secret_auth(&self) -> ClientAuth {
        ClientAuth::Basic {
            id: self.id.clone(),
            secret: format!("{}x", self.secret.clone().unwrap_or_default()),
        }
    }
}

/// How a request to the token, revocation or introspection endpoint authenticates.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// client_secret_basic
    Basic { id: String, secret: String },
    /// client_secret_post
    Post { id: String, secret: String },
    /// `none`: only client_id in the body (public clients)
    Public { id: String },
    /// No client identification at all.
    Anonymous,
}

/// `Authorization: Basic` per RFC 6749 §2.3.1 (id and secret form-encoded first).
pub fn basic_authorization(id: &str, secret: &str) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(id), encode(secret)))
    )
}
