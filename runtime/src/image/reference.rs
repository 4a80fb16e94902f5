//! Image references: `NAME[:TAG]`, `NAME@sha256:<hex>`, and a bare digest or image id.

use crate::digest::Digest;
use crate::error::{Error, Result};

/// The tag an image gets when none is given.
pub const DEFAULT_TAG: &str = "latest";

/// How the user named an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRef {
    /// `NAME:TAG` (`NAME` alone means `NAME:latest`).
    Tagged { name: String, tag: String },
    /// `NAME@sha256:<hex>`: the image `NAME` whose manifest has this digest.
    Digested { name: String, digest: Digest },
    /// `sha256:<hex>`, `<hex>` or a prefix of at least 12 hex digits: a manifest digest or an
    /// image id (the config digest, as `docker images` shows it).
    Id(String),
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageRef::Tagged { name, tag } => write!(f, "{name}:{tag}"),
            ImageRef::Digested { name, digest } => write!(f, "{name}@{digest}"),
            ImageRef::Id(p) => write!(f, "{p}"),
        }
    }
}

/// Splits `NAME[:TAG]` at the tag's colon (a colon before the last `/` is a registry port).
pub fn split_tag(s: &str) -> (&str, Option<&str>) {
    let slash = s.rfind('/').map(|i| i + 1).unwrap_or(0);
    match s[slash..].rfind(':') {
        Some(i) => (&s[..slash + i], Some(&s[slash + i + 1..])),
        None => (s, None),
    }
}

/// True for a hex string of 12 to 64 digits, with or without `sha256:`.
pub fn looks_like_id(s: &str) -> bool {
    let h = s.strip_prefix("sha256:").unwrap_or(s);
    (12..=64).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks an image name: lowercase-friendly path components of `[A-Za-z0-9._-]`, separated by
/// `/`, with an optional `HOST:PORT/` first component; no empty or `..` component.
pub fn check_name(name: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::Usage(format!("image name {name:?}: {why}")));
    if name.is_empty() || name.len() > 255 {
        return bad("must be 1 to 255 characters");
    }
    for (i, comp) in name.split('/').enumerate() {
        if comp.is_empty() || comp == "." || comp == ".." {
            return bad("empty, `.` or `..` component");
        }
        let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        let host_port = i == 0 && name.contains('/') && comp.contains(':');
        if !comp.bytes().all(|b| ok(b) || (host_port && b == b':')) {
            return bad("only letters, digits, `.`, `_`, `-` and `/` are allowed");
        }
    }
    Ok(())
}

/// Checks a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn check_tag(tag: &str) -> Result<()> {
    let ok_first = tag
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok_first
        || tag.len() > 128
        || !tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(Error::Usage(format!(
            "image tag {tag:?}: must be 1 to 128 of letters, digits, `_`, `.`, `-` (not first)"
        )));
    }
    Ok(())
}

/// Parses `NAME:TAG` (the tag defaulting to `latest`) and checks both.
pub fn parse_name_tag(s: &str) -> Result<(String, String)> {
    let (name, tag) = split_tag(s);
    let tag = tag.unwrap_or(DEFAULT_TAG);
    check_name(name)?;
    check_tag(tag)?;
    Ok((name.to_string(), tag.to_string()))
}

/// Parses any image reference.
pub fn parse(s: &str) -> Result<ImageRef> {
    if let Some((name, digest)) = s.split_once('@') {
        check_name(name)?;
        let digest = Digest::parse(digest)
            .ok_or_else(|| Error::Usage(format!("image {s}: {digest:?} is not a sha256 digest")))?;
        return Ok(ImageRef::Digested {
            name: name.to_string(),
            digest,
        });
    }
    if looks_like_id(s) {
        return Ok(ImageRef::Id(s.to_string()));
    }
    let (name, tag) = parse_name_tag(s)?;
    Ok(ImageRef::Tagged { name, tag })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_ports() {
        assert_eq!(split_tag("alpine:3.19"), ("alpine", Some("3.19")));
        assert_eq!(
            split_tag("localhost:5000/app"),
            ("localhost:5000/app", None)
        );
        assert_eq!(
            split_tag("localhost:5000/app:v1"),
            ("localhost:5000/app", Some("v1"))
        );
        assert_eq!(
            parse("library/x").unwrap(),
            ImageRef::Tagged {
                name: "library/x".into(),
                tag: "latest".into()
            }
        );
        assert!(matches!(parse("0123456789ab").unwrap(), ImageRef::Id(_)));
        assert!(matches!(
            parse(&format!("x@sha256:{}", "a".repeat(64))).unwrap(),
            ImageRef::Digested { .. }
        ));
    }

    #[test]
    fn bad_names_are_refused() {
        for n in ["", "a//b", "../x", "a/../b", "a b", "x:y/z:w:v", "/abs"] {
            assert!(parse_name_tag(n).is_err(), "{n:?} accepted");
        }
        assert!(parse_name_tag("x:-bad").is_err());
        assert!(parse_name_tag("localhost:5000/a/b:v1").is_ok());
    }
}
