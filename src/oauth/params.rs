//! Request parameters (RFC 6749 §3.1): parameters without a value are treated as omitted, and
//! a parameter may not be repeated.
//!
//! Parsing happens before client authentication, so it must cost no more than the size of the
//! input: the number of parameters is capped ([`MAX_PARAMS`]) by counting `&` before anything is
//! decoded, and repeats are found with a set of the names seen, not by comparing every pair.

use std::collections::HashSet;

use super::error::OAuthError;

/// The most parameters one request may carry: a protocol body, an authorization or logout query
/// string, or a form of a page. The largest legitimate request (an authorization request using
/// every OpenID Connect parameter) has about 20.
pub const MAX_PARAMS: usize = 100;

/// The answer for a request over [`MAX_PARAMS`].
pub fn too_many() -> OAuthError {
    OAuthError::InvalidRequest(format!(
        "the request has too many parameters (at most {MAX_PARAMS})"
    ))
}

/// How many `&`-separated parts `bytes` has begun, counted without decoding (`&` is the only
/// separator of `application/x-www-form-urlencoded`, WHATWG URL §5.1).
pub fn separators(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'&').count()
}

/// Refuses `text` when it holds more than [`MAX_PARAMS`] parameters, before decoding any.
pub fn check_count(text: &str) -> Result<(), OAuthError> {
    if separators(text.as_bytes()) >= MAX_PARAMS {
        return Err(too_many());
    }
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` text, refusing repeated parameters and more
    /// than [`MAX_PARAMS`] of them.
    pub fn parse(text: &str) -> Result<Self, OAuthError> {
        check_count(text)?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(text)
            .map_err(|_| OAuthError::InvalidRequest("malformed form body".into()))?;
        Self::from_pairs(pairs)
    }

    /// Keeps the parameters that have a value; refuses a repeated name and more than
    /// [`MAX_PARAMS`] pairs. Linear in the number of pairs: one set lookup per name.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, OAuthError> {
        if pairs.len() > MAX_PARAMS {
            return Err(too_many());
        }
        let mut seen: HashSet<&str> = HashSet::with_capacity(pairs.len());
        for (k, v) in &pairs {
            if !v.is_empty() && !seen.insert(k.as_str()) {
                return Err(OAuthError::InvalidRequest(format!(
                    "parameter `{k}` is repeated"
                )));
            }
        }
        Ok(Self(
            pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
        ))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::InvalidRequest(format!("`{name}` is required")))
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused_and_empty_ones_ignored() {
        assert!(Params::parse("a=1&a=2").is_err());
        let p = Params::parse("a=1&b=&c=x%20y").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y"));
    }

    fn distinct(n: usize) -> String {
        (0..n)
            .map(|i| format!("p{i}=x"))
            .collect::<Vec<_>>()
            .join("&")
    }

    #[test]
    fn the_parameter_cap_is_counted_before_decoding() {
        assert!(Params::parse(&distinct(MAX_PARAMS)).is_ok());
        assert_eq!(
            Params::parse(&distinct(MAX_PARAMS + 1)).err(),
            Some(too_many())
        );
        // Empty parts count too: the cap is a scan for `&`, not a decode.
        assert_eq!(
            Params::parse(&"&".repeat(MAX_PARAMS)).err(),
            Some(too_many())
        );
        assert!(check_count(&"&".repeat(MAX_PARAMS - 1)).is_ok());
    }

    #[test]
    fn a_repeat_is_found_anywhere_in_a_full_request() {
        let last_repeats_first = format!("{}&p0=y", distinct(MAX_PARAMS - 1));
        assert!(matches!(
            Params::parse(&last_repeats_first),
            Err(OAuthError::InvalidRequest(d)) if d.contains("`p0` is repeated")
        ));
        // A repeat without a value is an omitted parameter, not a repeat.
        assert!(Params::parse("a=1&a=").is_ok());
    }

    #[test]
    fn pairs_beyond_the_cap_are_refused_even_when_built_in_code() {
        let pairs: Vec<(String, String)> = (0..=MAX_PARAMS)
            .map(|i| (format!("p{i}"), "x".to_owned()))
            .collect();
        assert_eq!(Params::from_pairs(pairs).err(), Some(too_many()));
    }
}
