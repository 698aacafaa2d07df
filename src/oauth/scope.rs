//! Scopes (RFC 6749 §3.3): space-delimited, case-sensitive tokens of printable ASCII.

use super::error::OAuthError;

pub const OPENID: &str = "openid";
/// Scopes about a person; meaningless for client_credentials.
pub const USER_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// Parses a scope parameter into distinct tokens, in order.
pub fn parse(raw: &str) -> Result<Vec<String>, OAuthError> {
    let mut out: Vec<String> = Vec::new();
    for token in raw.split(' ').filter(|t| !t.is_empty()) {
        let valid = token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !valid || token.len() > 128 {
            return Err(OAuthError::InvalidScope("malformed scope".into()));
        }
        if !out.iter().any(|s| s == token) {
            out.push(token.to_string());
        }
    }
    if out.len() > 64 {
        return Err(OAuthError::InvalidScope("too many scopes".into()));
    }
    Ok(out)
}

/// Every requested scope must be allowed; scopes are narrowed, never widened.
pub fn require_allowed(requested: &[String], allowed: &[String]) -> Result<(), OAuthError> {
    match requested.iter().find(|s| !allowed.contains(s)) {
        Some(s) => Err(OAuthError::InvalidScope(format!(
            "scope `{s}` is not allowed for this client"
        ))),
        None => Ok(()),
    }
}

pub fn join(scopes: &[String]) -> String {
    scopes.join(" ")
}

pub fn contains(scope: &str, wanted: &str) -> bool {
    scope.split(' ').any(|s| s == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_split_deduplicated_and_checked() {
        assert_eq!(
            parse("openid  email openid").unwrap(),
            vec!["openid", "email"]
        );
        assert!(parse("bad\"scope").is_err());
        assert!(parse("caf\u{e9}").is_err());
        let allowed = vec!["openid".to_string(), "email".to_string()];
        assert!(require_allowed(&parse("email").unwrap(), &allowed).is_ok());
        assert!(require_allowed(&parse("email admin").unwrap(), &allowed).is_err());
    }
}
