//! Request parameters (RFC 6749 §3.1): parameters without a value are treated as omitted, and
//! a parameter may not be repeated.

use super::error::OAuthError;

#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` text, refusing repeated parameters.
    pub fn parse(text: &str) -> Result<Self, OAuthError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(text)
            .map_err(|_| OAuthError::InvalidRequest("malformed form body".into()))?;
        Self::from_pairs(pairs)
    }

    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, OAuthError> {
        let mut kept: Vec<(String, String)> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            if v.is_empty() {
                continue;
            }
            if kept.iter().any(|(seen, _)| *seen == k) {
                return Err(OAuthError::InvalidRequest(format!(
                    "parameter `{k}` is repeated"
                )));
            }
            kept.push((k, v));
        }
        Ok(Self(kept))
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
}
