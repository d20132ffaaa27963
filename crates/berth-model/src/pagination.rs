//! `maxResults` / `nextToken` pagination. A token is opaque to callers: the
//! URL-safe base64 of the sort key of the last item returned.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{ApiError, ApiResult};

/// A validated page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    /// Resume strictly after this sort key.
    pub after: Option<String>,
}

impl PageRequest {
    /// `max_results` must lie in `1..=max` (ECS's bound for the operation); absent,
    /// it is `default`.
    pub fn new(
        max_results: Option<i32>,
        next_token: Option<&str>,
        default: usize,
        max: usize,
    ) -> ApiResult<Self> {
        let limit = match max_results {
            None => default,
            Some(n) if n >= 1 && (n as usize) <= max => n as usize,
            Some(n) => {
                return Err(ApiError::invalid_parameter(format!(
                    "maxResults must be between 1 and {max}, got {n}."
                )));
            }
        };
        let after = match next_token {
            None | Some("") => None,
            Some(token) => Some(decode_token(token)?),
        };
        Ok(Self { limit, after })
    }
}

pub fn encode_token(sort_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(sort_key.as_bytes())
}

fn decode_token(token: &str) -> ApiResult<String> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| ApiError::invalid_parameter("Invalid nextToken."))
}

/// Cuts `items` (sorted, already filtered, starting after the page's key) to one page.
/// Returns the page and the token for the next one.
pub fn page<T>(
    mut items: Vec<T>,
    limit: usize,
    sort_key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    if items.len() <= limit {
        return (items, None);
    }
    items.truncate(limit);
    let token = items.last().map(|last| encode_token(&sort_key(last)));
    (items, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let token = encode_token("/us-east-1/cluster/a");
        let page = PageRequest::new(Some(5), Some(&token), 100, 100).ok();
        assert_eq!(
            page.and_then(|p| p.after).as_deref(),
            Some("/us-east-1/cluster/a")
        );
    }

    #[test]
    fn bounds_are_checked() {
        assert!(PageRequest::new(Some(0), None, 100, 100).is_err());
        assert!(PageRequest::new(Some(101), None, 100, 100).is_err());
        assert!(PageRequest::new(None, Some("!!!"), 100, 100).is_err());
        assert_eq!(
            PageRequest::new(None, None, 100, 100).map(|p| p.limit).ok(),
            Some(100)
        );
    }

    #[test]
    fn pages_cut_and_point_on() {
        let (items, token) = page(vec![1, 2, 3], 2, |i| i.to_string());
        assert_eq!(items, vec![1, 2]);
        assert_eq!(token, Some(encode_token("2")));
        let (items, token) = page(vec![1, 2], 2, |i| i.to_string());
        assert_eq!(items.len(), 2);
        assert!(token.is_none());
    }
}
