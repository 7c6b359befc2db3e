//! A small S3 client: GET and PUT of whole objects, create-only
//! (`If-None-Match: *`) and compare-and-swap (`If-Match: <etag>`) PUTs,
//! signed with AWS Signature Version 4 (header form, signed payload) and
//! sent with ureq. Synchronous, no async runtime; nothing else of S3.

use std::fmt;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::format::location::Location;

type HmacSha256 = Hmac<Sha256>;

/// The largest response body read (a record of the biggest object plus
/// its tags would not fit in memory anyway).
const MAX_BODY: u64 = 16 << 30;

/// AWS credentials: from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
/// `AWS_SESSION_TOKEN`, which the caller reads. The secret and the session
/// token never print.
#[derive(Clone)]
pub struct AwsCredentials {
    access_key: String,
    secret_key: String,
    session_token: Option<String>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

impl AwsCredentials {
    /// Credentials from their parts.
    pub fn new(access_key: String, secret_key: String, session_token: Option<String>) -> Self {
        AwsCredentials {
            access_key,
            secret_key,
            session_token,
        }
    }
}

/// A PUT's condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition<'a> {
    /// Only if no object has the name (`If-None-Match: *`).
    Absent,
    /// Only if the object's ETag is this one (`If-Match`).
    Matches(&'a str),
}

/// What a PUT did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// Written; the new ETag.
    Written(String),
    /// The condition failed (412, or 409 from a concurrent conditional
    /// write, or 404 for `If-Match` on a missing object): nothing written.
    ConditionFailed,
}

/// Why a request failed: the server could not be reached, or it answered
/// with an error. Holds no secret and no signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3Error {
    /// No connection, a timeout, a broken transfer.
    #[error("cannot reach {endpoint}: {reason}")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("{method} {key}: HTTP {status}{}", .code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Status {
        /// `GET` or `PUT`.
        method: &'static str,
        /// The object's key in the bucket.
        key: String,
        /// The HTTP status.
        status: u16,
        /// S3's error code (`AccessDenied`, `NoSuchBucket`), when given.
        code: Option<String>,
    },
}

/// A bucket at an endpoint, with credentials.
#[derive(Debug, Clone)]
pub struct Client {
    location: Location,
    credentials: AwsCredentials,
    agent: ureq::Agent,
}

impl Client {
    /// A client for the bucket at `location`.
    pub fn new(location: Location, credentials: AwsCredentials) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(300)))
            .http_status_as_error(false)
            .max_idle_connections_per_host(16)
            .build()
            .into();
        Client {
            location,
            credentials,
            agent,
        }
    }

    /// Where the bucket is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The object `key` and its ETag, or `None` when there is none.
    pub fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, S3Error> {
        let (url, headers) = self.signed("GET", key, &[], &[], SystemTime::now());
        let mut req = self.agent.get(&url);
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let mut resp = req.call().map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        let etag = etag_of(&resp);
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| self.unreachable(e))?;
        if status != 200 {
            return Err(self.status("GET", key, status, &body));
        }
        Ok(Some((body, etag)))
    }

    /// Writes `body` as object `key` under `condition`.
    pub fn put(&self, key: &str, body: &[u8], condition: Condition) -> Result<Put, S3Error> {
        let extra: Vec<(&str, &str)> = match condition {
            Condition::Absent => vec![("if-none-match", "*")],
            Condition::Matches(etag) => vec![("if-match", etag)],
        };
        let (url, headers) = self.signed("PUT", key, &extra, body, SystemTime::now());
        let mut req = self
            .agent
            .put(&url)
            .header("content-type", "application/octet-stream");
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let mut resp = req.send(body).map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        let etag = etag_of(&resp);
        let text = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .unwrap_or_default();
        match (status, condition) {
            (200, _) => Ok(Put::Written(etag)),
            (412 | 409, Condition::Absent | Condition::Matches(_)) => Ok(Put::ConditionFailed),
            (404, Condition::Matches(_)) if error_code(&text).as_deref() == Some("NoSuchKey") => {
                Ok(Put::ConditionFailed)
            }
            _ => Err(self.status("PUT", key, status, &text)),
        }
    }

    fn unreachable(&self, e: ureq::Error) -> S3Error {
        S3Error::Unreachable {
            endpoint: self.location.endpoint.clone(),
            reason: match e {
                // These can carry the URL; ours holds no secret, but keep
                // messages short.
                ureq::Error::BadUri(_) | ureq::Error::Http(_) => "invalid URL".to_owned(),
                ureq::Error::Timeout(_) => "no answer in time".to_owned(),
                e => e.to_string(),
            },
        }
    }

    fn status(&self, method: &'static str, key: &str, status: u16, body: &[u8]) -> S3Error {
        S3Error::Status {
            method,
            key: key.to_owned(),
            status,
            code: error_code(body),
        }
    }

    /// The URL and the headers of a signed request (SigV4, header form):
    /// `host`, the `extra` headers (lowercase names), the payload's
    /// SHA-256, the time and the session token are signed.
    fn signed(
        &self,
        method: &str,
        key: &str,
        extra: &[(&str, &str)],
        body: &[u8],
        now: SystemTime,
    ) -> (String, Vec<(String, String)>) {
        let (url, host, path) = self.location.object_url(key);
        let amz_date = amz_date(now);
        let date = &amz_date[..8];
        let payload = hex::encode(Sha256::digest(body));
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), host),
            ("x-amz-content-sha256".into(), payload.clone()),
            ("x-amz-date".into(), amz_date.clone()),
        ];
        if let Some(t) = &self.credentials.session_token {
            headers.push(("x-amz-security-token".into(), t.clone()));
        }
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        headers.sort();
        let signed_names = headers
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let canonical = format!(
            "{method}\n{path}\n\n{}\n{signed_names}\n{payload}",
            headers
                .iter()
                .map(|(k, v)| format!("{k}:{}\n", v.trim()))
                .collect::<String>()
        );
        let scope = format!("{date}/{}/s3/aws4_request", self.location.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let k_date = mac(
            format!("AWS4{}", self.credentials.secret_key).as_bytes(),
            date.as_bytes(),
        );
        let k_region = mac(&k_date, self.location.region.as_bytes());
        let k_service = mac(&k_region, b"s3");
        let k_signing = mac(&k_service, b"aws4_request");
        let signature = hex::encode(mac(&k_signing, to_sign.as_bytes()));
        headers.push((
            "authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_names}, Signature={signature}",
                self.credentials.access_key
            ),
        ));
        // ureq sets Host itself from the URL.
        headers.retain(|(k, _)| k != "host");
        (url, headers)
    }
}

fn mac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(msg);
    m.finalize().into_bytes().into()
}

fn etag_of(resp: &ureq::http::Response<ureq::Body>) -> String {
    resp.headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// S3's `<Code>` from an error body.
fn error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let end = start + text[start..].find("</Code>")?;
    let code = &text[start..end];
    (code.len() < 64 && code.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| code.to_owned())
}

/// `YYYYMMDDTHHMMSSZ`.
fn amz_date(now: SystemTime) -> String {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let t = crate::format::time::rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(secs));
    // `2026-11-25T01:00:30.000Z` → `20261125T010030Z`
    let digits: String = t[..19].chars().filter(|c| c.is_ascii_digit()).collect();
    format!("{}T{}Z", &digits[..8], &digits[8..14])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request signed by botocore 1.x (`SigV4Auth`, the signer of the
    /// AWS SDK for Python) with the same credentials, time and headers.
    #[test]
    fn signatures_match_the_aws_sdk() {
        let location = Location::parse(
            "s3://bucket/pre",
            Some("http://127.0.0.1:9000"),
            Some("us-east-1"),
        )
        .unwrap();
        let client = Client::new(
            location,
            AwsCredentials::new(
                "AKIDEXAMPLE".into(),
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
                None,
            ),
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let (url, headers) =
            client.signed("PUT", "pre/HEAD", &[("if-none-match", "*")], b"hello", now);
        assert_eq!(url, "http://127.0.0.1:9000/bucket/pre/HEAD");
        let auth = &headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251124/us-east-1/s3/aws4_request, \
             SignedHeaders=host;if-none-match;x-amz-content-sha256;x-amz-date, \
             Signature=2d7786b8dacf787b3e8e336ca1743202f8b1865fbd7424aaee01240015da48ac"
        );
    }

    #[test]
    fn error_codes_are_read_from_error_bodies() {
        assert_eq!(
            error_code(b"<Error><Code>NoSuchBucket</Code></Error>").as_deref(),
            Some("NoSuchBucket")
        );
        assert_eq!(error_code(b"<Code>a b</Code>"), None);
        assert_eq!(error_code(b"nothing"), None);
    }

    #[test]
    fn dates_are_in_the_basic_format() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        assert_eq!(amz_date(now), "20251124T160000Z");
    }
}
