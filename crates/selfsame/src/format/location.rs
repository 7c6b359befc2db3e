//! Where a remote is: `s3://BUCKET/PREFIX`, an optional endpoint
//! (`http://127.0.0.1:9000`, an S3-compatible server; path-style URLs) and
//! a region (default `us-east-1`; AWS itself gets virtual-hosted URLs).

use std::fmt;

/// The default region.
pub const DEFAULT_REGION: &str = "us-east-1";

/// A bucket, a prefix in it, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The bucket.
    pub bucket: String,
    /// The prefix of every key, without a leading or trailing `/` (may be
    /// empty).
    pub prefix: String,
    /// `scheme://host[:port]`, without a trailing `/`.
    pub endpoint: String,
    /// The region requests are signed for.
    pub region: String,
    /// Bucket in the path (`endpoint/bucket/key`) rather than the host.
    path_style: bool,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}", self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

impl Location {
    /// Parses `s3://BUCKET[/PREFIX]` with an optional endpoint and region.
    /// The error says what is wrong.
    pub fn parse(url: &str, endpoint: Option<&str>, region: Option<&str>) -> Result<Self, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("remote url {url:?}: expected s3://BUCKET/PREFIX"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !bucket_ok {
            return Err(format!(
                "remote url {url:?}: {bucket:?} is not a bucket name (3 to 63 lowercase letters, digits, `-` and `.`)"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|s| s == "." || s == "..")
            || prefix.contains("//")
            || prefix.chars().any(char::is_control)
        {
            return Err(format!(
                "remote url {url:?}: the prefix may not hold empty, `.` or `..` segments or control characters"
            ));
        }
        let region = region.unwrap_or(DEFAULT_REGION);
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!("remote region {region:?}: expected e.g. us-east-1"));
        }
        let (endpoint, path_style) = match endpoint {
            Some(e) => {
                let e = e.trim_end_matches('/');
                let host = e
                    .strip_prefix("http://")
                    .or_else(|| e.strip_prefix("https://"))
                    .ok_or_else(|| {
                        format!("remote endpoint {e:?}: expected http://HOST[:PORT] or https://HOST[:PORT]")
                    })?;
                if host.is_empty() || host.contains(['/', '?', '#', '@']) {
                    return Err(format!(
                        "remote endpoint {e:?}: expected a scheme and a host with an optional port, nothing else"
                    ));
                }
                (e.to_owned(), true)
            }
            None => (format!("https://s3.{region}.amazonaws.com"), false),
        };
        Ok(Location {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint,
            region: region.to_owned(),
            path_style,
        })
    }

    /// The key of `name` (a path below the prefix).
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// The URL of object `key`, its host (for signing) and its canonical
    /// path (URI-encoded, `/` kept).
    pub fn object_url(&self, key: &str) -> (String, String, String) {
        let (scheme, host) = self
            .endpoint
            .split_once("://")
            .expect("the endpoint has a scheme");
        let encoded = encode_path(key);
        if self.path_style {
            let path = format!("/{}/{encoded}", self.bucket);
            (format!("{}{path}", self.endpoint), host.to_owned(), path)
        } else {
            let host = format!("{}.{host}", self.bucket);
            let path = format!("/{encoded}");
            (format!("{scheme}://{host}{path}"), host, path)
        }
    }
}

/// RFC 3986 percent-encoding of everything but unreserved bytes and `/`.
fn encode_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_to_bucket_prefix_and_endpoint() {
        let l = Location::parse("s3://my-bucket/agents/bot1/", None, None).unwrap();
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str()),
            ("my-bucket", "agents/bot1")
        );
        assert_eq!(
            l.object_url("agents/bot1/HEAD").0,
            "https://my-bucket.s3.us-east-1.amazonaws.com/agents/bot1/HEAD"
        );
        assert_eq!(l.to_string(), "s3://my-bucket/agents/bot1");
        let l = Location::parse(
            "s3://bkt",
            Some("http://127.0.0.1:9000/"),
            Some("eu-west-1"),
        )
        .unwrap();
        assert_eq!(l.prefix, "");
        assert_eq!(l.key("HEAD"), "HEAD");
        let (url, host, path) = l.object_url("a b/c");
        assert_eq!(url, "http://127.0.0.1:9000/bkt/a%20b/c");
        assert_eq!(
            (host.as_str(), path.as_str()),
            ("127.0.0.1:9000", "/bkt/a%20b/c")
        );
        for bad in [
            "http://x/y",
            "s3://",
            "s3://UPPER",
            "s3://b/../x",
            "s3://ab",
        ] {
            assert!(Location::parse(bad, None, None).is_err(), "{bad}");
        }
        assert!(Location::parse("s3://bkt", Some("ftp://x"), None).is_err());
        assert!(Location::parse("s3://bkt", Some("http://u:p@x"), None).is_err());
    }
}
