//! Registry authentication as the distribution spec's token flow describes: a request
//! answered `401` with `WWW-Authenticate: Bearer realm=...,service=...,scope=...` is sent
//! again with a token fetched from the realm (`GET realm?service=...&scope=...`, anonymous,
//! or with the registry's credentials from a docker `config.json`); a `Basic` challenge is
//! answered with those credentials directly.
//!
//! Credentials: `auths.<host>.auth` (base64 `user:password`) of `$DOCKER_CONFIG/config.json`,
//! else `~/.docker/config.json`. The token service is reached over HTTPS with the same trusted
//! CAs as the registry; a plain `http://` realm only on this machine or with `--insecure`.

use std::collections::BTreeMap;

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// `bearer` or `basic` (lowercase).
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

/// Parses `Scheme k="v",k2="v, with commas",k3=v3`.
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = match h.split_once(' ') {
        Some((s, r)) => (s, r),
        None => (h, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            params.insert(key.trim().to_ascii_lowercase(), String::new());
            continue;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// The base64 `user:password` docker's config.json holds for `host`, if any.
pub fn docker_credentials(host: &str) -> Option<String> {
    let path = match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => std::path::PathBuf::from(d).join("config.json"),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".docker/config.json"),
    };
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let auths = v.get("auths")?.as_object()?;
    [
        host.to_string(),
        format!("http://{host}"),
        format!("https://{host}"),
    ]
    .iter()
    .find_map(|k| auths.get(k)?.get("auth")?.as_str())
    .filter(|a| !a.is_empty())
    .map(str::to_string)
}

/// `GET realm?service=...&scope=...` as a URL (each scope its own parameter).
pub fn token_url(c: &Challenge) -> Option<String> {
    let realm = c.params.get("realm")?;
    let mut q = Vec::new();
    if let Some(s) = c.params.get("service") {
        q.push(format!("service={}", encode(s)));
    }
    for s in c.params.get("scope").into_iter().flat_map(|s| s.split(' ')) {
        if !s.is_empty() {
            q.push(format!("scope={}", encode(s)));
        }
    }
    let sep = if realm.contains('?') { '&' } else { '?' };
    Some(if q.is_empty() {
        realm.clone()
    } else {
        format!("{realm}{sep}{}", q.join("&"))
    })
}

/// Percent-encoding of a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b'/' | b',')
            {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_with_quoted_commas() {
        let c = parse_challenge(
            r#"Bearer realm="http://a/token",service="reg",scope="repository:x/y:pull,push repository:z:pull""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "http://a/token");
        assert_eq!(
            c.params["scope"],
            "repository:x/y:pull,push repository:z:pull"
        );
        assert_eq!(
            token_url(&c).unwrap(),
            "http://a/token?service=reg&scope=repository:x/y:pull,push&scope=repository:z:pull"
        );
        let b = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(
            (b.scheme.as_str(), b.params["realm"].as_str()),
            ("basic", "Registry Realm")
        );
        assert!(parse_challenge("").is_none());
    }
}
