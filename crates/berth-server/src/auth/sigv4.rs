//! Verification of AWS Signature Version 4 (`Authorization: AWS4-HMAC-SHA256 ...`).
//!
//! The verifier rebuilds the canonical request and the string to sign the way SigV4
//! defines them, derives the signing key from the secret berth holds for the access
//! key, and compares signatures in constant time. The canonical request is fed to
//! SHA-256 piece by piece rather than built as a string: it is only needed as a hash.
//! Signing keys change once a day per (key, region, service), so they are cached.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_model::{ApiError, ErrorCode};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, percent_encode};
use sha2::{Digest, Sha256};

use super::credentials::Credentials;

type HmacSha256 = Hmac<Sha256>;

/// The only signing algorithm berth accepts.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far the request's time may be from the server's, either way (as in AWS).
pub const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;
/// The signing key cache is emptied when it grows past this many entries. A key is
/// cached only after a request signed with it verified, so only holders of a secret
/// can fill it.
pub(crate) const SIGNING_KEY_CACHE_LIMIT: usize = 4096;

const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the \
     signature you provided. Check your AWS Secret Access Key and signing method. Consult \
     the service documentation for details.";

/// Characters left as they are in a canonical URI: unreserved ones and `/`.
const URI_PATH_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');
/// Characters left as they are in canonical query names and values: unreserved ones.
const QUERY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Who signed a request, and for which region and service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub access_key_id: String,
    pub region: String,
    /// The service named in the credential scope; SDKs use "ecs".
    pub service: String,
}

/// The parts of an HTTP request that SigV4 covers, borrowed.
#[derive(Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The path as received, still percent-encoded.
    pub path: &'a str,
    /// The query string as received, without `?`; empty if none.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    /// The URI's authority, used as the `host` value if there is no `Host` header.
    pub authority: Option<&'a str>,
}

impl<'a> RequestParts<'a> {
    pub fn new(method: &'a str, path: &'a str, query: &'a str, headers: &'a HeaderMap) -> Self {
        Self {
            method,
            path,
            query,
            headers,
            authority: None,
        }
    }

    pub fn from_http(parts: &'a http::request::Parts) -> Self {
        Self::from_pieces(&parts.method, &parts.uri, &parts.headers)
    }

    pub fn from_request<B>(request: &'a http::Request<B>) -> Self {
        Self::from_pieces(request.method(), request.uri(), request.headers())
    }

    fn from_pieces(method: &'a http::Method, uri: &'a http::Uri, headers: &'a HeaderMap) -> Self {
        Self {
            method: method.as_str(),
            path: uri.path(),
            query: uri.query().unwrap_or(""),
            headers,
            authority: uri.authority().map(http::uri::Authority::as_str),
        }
    }
}

impl fmt::Debug for RequestParts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestParts")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

/// Verifies SigV4-signed requests against a set of access keys.
pub struct SigV4Verifier {
    credentials: Arc<Credentials>,
    /// "ACCESS_KEY_ID/DATE/REGION/SERVICE" -> HMAC keyed with the signing key, ready to
    /// be cloned and fed the string to sign (this also saves hashing the key pads).
    signing_keys: RwLock<HashMap<Box<str>, HmacSha256>>,
}

impl fmt::Debug for SigV4Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigV4Verifier")
            .field("credentials", &self.credentials)
            .field("cached_signing_keys", &self.cached_signing_keys())
            .finish()
    }
}

impl SigV4Verifier {
    pub fn new(credentials: impl Into<Arc<Credentials>>) -> Self {
        Self {
            credentials: credentials.into(),
            signing_keys: RwLock::new(HashMap::new()),
        }
    }

    pub fn credentials(&self) -> &Arc<Credentials> {
        &self.credentials
    }

    /// How many signing keys are cached.
    pub fn cached_signing_keys(&self) -> usize {
        self.signing_keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Verifies a request whose body has been read in full.
    pub fn verify(
        &self,
        req: &RequestParts<'_>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Authenticated, ApiError> {
        self.verify_payload(req, Payload::Body(body), now)
    }

    /// Like [`SigV4Verifier::verify`], for a caller that already has the body's SHA-256.
    pub fn verify_with_body_sha256(
        &self,
        req: &RequestParts<'_>,
        body_sha256: &[u8; 32],
        now: SystemTime,
    ) -> Result<Authenticated, ApiError> {
        self.verify_payload(req, Payload::Sha256(body_sha256), now)
    }

    fn verify_payload(
        &self,
        req: &RequestParts<'_>,
        payload: Payload<'_>,
        now: SystemTime,
    ) -> Result<Authenticated, ApiError> {
        let Some(authorization) = req.headers.get(http::header::AUTHORIZATION) else {
            return Err(ApiError::new(
                ErrorCode::MissingAuthenticationTokenException,
                "Missing Authentication Token",
            ));
        };
        let authorization = authorization.to_str().map_err(|_| {
            incomplete("The Authorization header contains characters that are not visible ASCII.")
        })?;
        let auth = AuthorizationHeader::parse(authorization)?;
        let date = RequestDate::from_headers(req.headers, authorization)?;

        let Some(secret) = self.credentials.secret(auth.access_key_id) else {
            return Err(ApiError::new(
                ErrorCode::UnrecognizedClientException,
                "The security token included in the request is invalid.",
            ));
        };

        check_clock_skew(date.unix, unix_seconds(now), date.iso)?;
        if auth.date != &date.iso[..8] {
            return Err(invalid(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of \
                 date from HTTP: '{}' != '{}', from '{}'.",
                auth.date,
                &date.iso[..8],
                date.header
            )));
        }

        let mut body_hex = [0u8; 64];
        let payload_hash = payload_hash(req.headers, payload, &mut body_hex)?;

        // Hash of the canonical request.
        let mut hasher = Sha256::new();
        write_canonical_request(&mut hasher, req, auth.signed_headers, payload_hash)?;
        let mut request_hash = [0u8; 64];
        hex_lower(&hasher.finalize(), &mut request_hash);

        let mut provided = [0u8; 32];
        let provided_ok = auth.signature.len() == 64
            && hex::decode_to_slice(auth.signature, &mut provided).is_ok();

        // `fresh` is the newly derived key, cached only once the signature checks out.
        let (mut mac, fresh) = match self.cached_key(auth.scope_key) {
            Some(keyed) => (keyed, None),
            None => {
                let keyed = signing_key(secret, auth.date, auth.region, auth.service);
                (keyed.clone(), Some(keyed))
            }
        };
        mac.update(ALGORITHM.as_bytes());
        mac.update(b"\n");
        mac.update(date.iso.as_bytes());
        mac.update(b"\n");
        mac.update(auth.scope.as_bytes());
        mac.update(b"\n");
        mac.update(&request_hash);
        // verify_slice compares in constant time.
        if !provided_ok || mac.verify_slice(&provided).is_err() {
            self.log_mismatch(req, &auth, &date, payload_hash);
            return Err(invalid(SIGNATURE_MISMATCH));
        }

        if let Some(keyed) = fresh {
            let mut cache = self.signing_keys.write().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= SIGNING_KEY_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(auth.scope_key.into(), keyed);
        }
        Ok(Authenticated {
            access_key_id: auth.access_key_id.to_owned(),
            region: auth.region.to_owned(),
            service: auth.service.to_owned(),
        })
    }

    fn cached_key(&self, scope_key: &str) -> Option<HmacSha256> {
        self.signing_keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(scope_key)
            .cloned()
    }

    /// Logs what berth signed, for whoever debugs a client. Off the hot path.
    fn log_mismatch(
        &self,
        req: &RequestParts<'_>,
        auth: &AuthorizationHeader<'_>,
        date: &RequestDate<'_>,
        payload_hash: &str,
    ) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let mut canonical = Vec::new();
        if write_canonical_request(&mut canonical, req, auth.signed_headers, payload_hash).is_ok() {
            tracing::debug!(
                access_key_id = auth.access_key_id,
                canonical_request = %String::from_utf8_lossy(&canonical),
                string_to_sign_date = %date.iso,
                scope = auth.scope,
                "SigV4 signature mismatch"
            );
        }
    }
}

enum Payload<'a> {
    Body(&'a [u8]),
    Sha256(&'a [u8; 32]),
}

/// The payload line of the canonical request: the body's hex SHA-256, or the literal
/// `UNSIGNED-PAYLOAD` if the client said so in `x-amz-content-sha256`. A hash given in
/// that header must be the body's.
fn payload_hash<'a>(
    headers: &'a HeaderMap,
    payload: Payload<'_>,
    hex_buf: &'a mut [u8; 64],
) -> Result<&'a str, ApiError> {
    let declared = headers
        .get("x-amz-content-sha256")
        .map(HeaderValue::as_bytes);
    if declared == Some(UNSIGNED_PAYLOAD.as_bytes()) {
        return Ok(UNSIGNED_PAYLOAD);
    }
    let digest: [u8; 32] = match payload {
        Payload::Body(body) => Sha256::digest(body).into(),
        Payload::Sha256(hash) => *hash,
    };
    hex_lower(&digest, hex_buf);
    let computed = std::str::from_utf8(hex_buf.as_slice())
        .map_err(|_| ApiError::server("hex encoding produced non-UTF-8"))?;
    match declared {
        None => Ok(computed),
        Some(declared) if declared.eq_ignore_ascii_case(computed.as_bytes()) => Ok(computed),
        Some(declared) if declared.starts_with(b"STREAMING-") => Err(invalid(
            "Streaming (chunk-signed) payloads are not supported; sign the whole body.",
        )),
        Some(_) => Err(invalid(
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )),
    }
}

/// The parsed `Authorization` header; every field borrows from it.
#[derive(Debug)]
struct AuthorizationHeader<'a> {
    access_key_id: &'a str,
    /// "DATE/REGION/SERVICE/aws4_request", as in the string to sign.
    scope: &'a str,
    /// "ACCESS_KEY_ID/DATE/REGION/SERVICE": the signing key cache's key.
    scope_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

impl<'a> AuthorizationHeader<'a> {
    /// Parses `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
    /// Parameters may come in any order, separated by commas and/or spaces, with or
    /// without spaces around `=`.
    fn parse(value: &'a str) -> Result<Self, ApiError> {
        let value = value.trim();
        let (algorithm, params) = value
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((value, ""));
        if algorithm != ALGORITHM {
            return Err(incomplete(format!(
                "Unsupported Authorization algorithm '{algorithm}'; berth accepts {ALGORITHM} \
                 (AWS Signature Version 4) only."
            )));
        }

        let mut credential = None;
        let mut signed_headers = None;
        let mut signature = None;
        for (name, param) in Params::new(params) {
            let slot = match name {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed_headers,
                "Signature" => &mut signature,
                _ => continue,
            };
            if slot.is_some() {
                return Err(incomplete(format!(
                    "Authorization header has the '{name}' parameter more than once."
                )));
            }
            *slot = Some(param).filter(|p| !p.is_empty());
        }
        let (Some(credential), Some(signed_headers), Some(signature)) =
            (credential, signed_headers, signature)
        else {
            let mut message = String::new();
            for (missing, name) in [
                (credential.is_none(), "Credential"),
                (signature.is_none(), "Signature"),
                (signed_headers.is_none(), "SignedHeaders"),
            ] {
                if missing {
                    message.push_str("Authorization header requires '");
                    message.push_str(name);
                    message.push_str("' parameter. ");
                }
            }
            message.push_str("Authorization=");
            message.push_str(value);
            return Err(incomplete(message));
        };

        let malformed = || {
            incomplete(format!(
                "Authorization Credential '{credential}' is malformed; expected \
                 ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request."
            ))
        };
        let mut parts = credential.split('/');
        let (Some(access_key_id), Some(date), Some(region), Some(service), Some(terminator), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(malformed());
        };
        if [access_key_id, date, region, service]
            .iter()
            .any(|p| p.is_empty())
        {
            return Err(malformed());
        }
        if terminator != "aws4_request" {
            return Err(incomplete(format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not \
                 '{terminator}'."
            )));
        }
        let scope = &credential[access_key_id.len() + 1..];
        let scope_key = &credential[..credential.len() - terminator.len() - 1];

        if signed_headers.split(';').any(str::is_empty) {
            return Err(incomplete(format!(
                "Authorization SignedHeaders '{signed_headers}' is malformed; expected \
                 lowercase header names separated by ';'."
            )));
        }
        if !signed_headers
            .split(';')
            .any(|h| h.eq_ignore_ascii_case("host"))
        {
            return Err(incomplete(
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            ));
        }

        Ok(Self {
            access_key_id,
            scope,
            scope_key,
            date,
            region,
            service,
            signed_headers,
            signature,
        })
    }
}

/// Iterates over the `name=value` parameters of an `Authorization` header.
struct Params<'a> {
    rest: &'a str,
}

impl<'a> Params<'a> {
    fn new(params: &'a str) -> Self {
        Self { rest: params }
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let is_sep = |c: char| c == ',' || c.is_ascii_whitespace();
        loop {
            let rest = self.rest.trim_start_matches(is_sep);
            if rest.is_empty() {
                self.rest = rest;
                return None;
            }
            let name_end = rest
                .find(|c: char| c == '=' || is_sep(c))
                .unwrap_or(rest.len());
            let name = &rest[..name_end];
            let after_name = rest[name_end..].trim_start_matches(|c: char| c.is_ascii_whitespace());
            let Some(after_eq) = after_name.strip_prefix('=') else {
                // A bare word: skip it.
                self.rest = after_name;
                continue;
            };
            let value_start = after_eq.trim_start_matches(|c: char| c.is_ascii_whitespace());
            let value_end = value_start.find(is_sep).unwrap_or(value_start.len());
            self.rest = &value_start[value_end..];
            return Some((name, &value_start[..value_end]));
        }
    }
}

/// The request's time, from `X-Amz-Date` or else `Date`, in ISO 8601 basic format.
#[derive(Debug)]
struct RequestDate<'a> {
    /// YYYYMMDD'T'HHMMSS'Z', as it goes into the string to sign.
    iso: &'a str,
    unix: i64,
    header: &'static str,
}

impl<'a> RequestDate<'a> {
    fn from_headers(headers: &'a HeaderMap, authorization: &str) -> Result<Self, ApiError> {
        let (header, value) = if let Some(v) = headers.get("x-amz-date") {
            ("X-Amz-Date", v)
        } else if let Some(v) = headers.get(http::header::DATE) {
            ("Date", v)
        } else {
            return Err(incomplete(format!(
                "Authorization header requires existence of either a 'X-Amz-Date' or a \
                 'Date' header. Authorization={authorization}"
            )));
        };
        let text = value.to_str().unwrap_or("").trim();
        match parse_iso_basic(text) {
            Some(unix) => Ok(Self {
                iso: text,
                unix,
                header,
            }),
            None => Err(incomplete(format!(
                "Date must be in ISO-8601 'basic format'. Got '{}'. See \
                 https://docs.aws.amazon.com/general/latest/gr/sigv4-date-handling.html",
                String::from_utf8_lossy(value.as_bytes())
            ))),
        }
    }
}

fn check_clock_skew(request: i64, now: i64, request_iso: &str) -> Result<(), ApiError> {
    if request < now - MAX_CLOCK_SKEW_SECS {
        return Err(invalid(format!(
            "Signature expired: {request_iso} is now earlier than {} ({} - 15 min.)",
            format_iso_basic(now - MAX_CLOCK_SKEW_SECS),
            format_iso_basic(now)
        )));
    }
    if request > now + MAX_CLOCK_SKEW_SECS {
        return Err(invalid(format!(
            "Signature not yet current: {request_iso} is still later than {} ({} + 15 min.)",
            format_iso_basic(now + MAX_CLOCK_SKEW_SECS),
            format_iso_basic(now)
        )));
    }
    Ok(())
}

/// Parses `YYYYMMDD'T'HHMMSS'Z'` to Unix seconds.
fn parse_iso_basic(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
    let day = u8::try_from(num(6..8)?).ok()?;
    let hour = u8::try_from(num(9..11)?).ok()?;
    let minute = u8::try_from(num(11..13)?).ok()?;
    let second = u8::try_from(num(13..15)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let time = time::Time::from_hms(hour, minute, second).ok()?;
    Some(
        time::PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp(),
    )
}

fn format_iso_basic(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => unix.to_string(),
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request"),
/// returned as an HMAC keyed with it.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> HmacSha256 {
    let mut k_secret = Vec::with_capacity(4 + secret.len());
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret.as_bytes());
    let mut key = hmac(&k_secret, date.as_bytes());
    for part in [region.as_bytes(), service.as_bytes(), b"aws4_request"] {
        key = hmac(&key, part);
    }
    keyed(&key)
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; this cannot fail.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = keyed(key);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn hex_lower(bytes: &[u8], out: &mut [u8; 64]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().take(32).enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// Where canonical request bytes go: a hasher on the hot path, a buffer for logs.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Writes the canonical request:
/// method, canonical URI, canonical query, canonical headers, signed headers and the
/// payload hash, separated by newlines (the headers block ends with its own newline).
fn write_canonical_request<S: Sink>(
    out: &mut S,
    req: &RequestParts<'_>,
    signed_headers: &str,
    payload_hash: &str,
) -> Result<(), ApiError> {
    out.put(req.method.as_bytes());
    out.put(b"\n");
    write_canonical_uri(out, req.path);
    out.put(b"\n");
    write_canonical_query(out, req.query);
    out.put(b"\n");
    for name in signed_headers.split(';') {
        out.put(name.as_bytes());
        out.put(b":");
        let mut values = req.headers.get_all(name).iter().peekable();
        if values.peek().is_none() {
            match req.authority {
                Some(authority) if name.eq_ignore_ascii_case("host") => {
                    out.put(authority.as_bytes());
                }
                _ => {
                    return Err(incomplete(format!(
                        "The signed header '{name}' is not in the request."
                    )));
                }
            }
        }
        for (i, value) in values.enumerate() {
            if i > 0 {
                out.put(b",");
            }
            write_trimmed(out, value.as_bytes());
        }
        out.put(b"\n");
    }
    out.put(b"\n");
    out.put(signed_headers.as_bytes());
    out.put(b"\n");
    out.put(payload_hash.as_bytes());
    Ok(())
}

/// A header value with leading and trailing whitespace removed and inner runs of
/// whitespace collapsed to one space.
fn write_trimmed<S: Sink>(out: &mut S, value: &[u8]) {
    let mut words = value
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty());
    if let Some(first) = words.next() {
        out.put(first);
        for word in words {
            out.put(b" ");
            out.put(word);
        }
    }
}

/// The path with `.`/`..` and empty segments removed, each byte outside the
/// unreserved set percent-encoded. The path arrives already encoded, so its `%`
/// escapes are encoded again: SigV4 double-encodes paths for every service but S3.
fn write_canonical_uri<S: Sink>(out: &mut S, path: &str) {
    if path.is_empty() || path == "/" {
        out.put(b"/");
        return;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    out.put(b"/");
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            out.put(b"/");
        }
        for chunk in percent_encode(segment.as_bytes(), URI_PATH_ESCAPE) {
            out.put(chunk.as_bytes());
        }
    }
    if path.ends_with('/') && !segments.is_empty() {
        out.put(b"/");
    }
}

/// The query parameters decoded, re-encoded with uppercase escapes, sorted by name then
/// value, and joined as `name=value&...`. A `+` in the query stands for a space.
fn write_canonical_query<S: Sink>(out: &mut S, query: &str) {
    if query.is_empty() {
        return;
    }
    let encode = |raw: &str| -> String {
        let decoded: Vec<u8> = if raw.contains('+') {
            percent_decode_str(&raw.replace('+', "%20")).collect()
        } else {
            percent_decode_str(raw).collect()
        };
        percent_encode(&decoded, QUERY_ESCAPE).to_string()
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            (encode(name), encode(value))
        })
        .collect();
    pairs.sort_unstable();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.put(b"&");
        }
        out.put(name.as_bytes());
        out.put(b"=");
        out.put(value.as_bytes());
    }
}

fn incomplete(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::IncompleteSignatureException, message)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidSignatureException, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical_uri(path: &str) -> String {
        let mut out = Vec::new();
        write_canonical_uri(&mut out, path);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn canonical_query(query: &str) -> String {
        let mut out = Vec::new();
        write_canonical_query(&mut out, query);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn canonical_uris() {
        for (path, expected) in [
            ("", "/"),
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a%20b", "/a%2520b"),
            ("/a/./b/../c/", "/a/c/"),
            ("//a//b", "/a/b"),
            ("/../..", "/"),
            ("/~user/x-y_z.json", "/~user/x-y_z.json"),
            ("/a:b@c", "/a%3Ab%40c"),
        ] {
            assert_eq!(canonical_uri(path), expected, "{path}");
        }
    }

    #[test]
    fn canonical_queries() {
        for (query, expected) in [
            ("", ""),
            ("b=2&a=1&a=0", "a=0&a=1&b=2"),
            ("x=a+b", "x=a%20b"),
            ("k=%2f%7e%2B", "k=%2F~%2B"),
            ("flag", "flag="),
            ("a=&&b", "a=&b="),
            (
                "Action=ListUsers&Version=2010-05-08",
                "Action=ListUsers&Version=2010-05-08",
            ),
        ] {
            assert_eq!(canonical_query(query), expected, "{query}");
        }
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        for (value, expected) in [
            ("  a   b  c ", "a b c"),
            ("x", "x"),
            ("", ""),
            ("\ta\t\tb", "a b"),
            ("   ", ""),
        ] {
            let mut out = Vec::new();
            write_trimmed(&mut out, value.as_bytes());
            assert_eq!(String::from_utf8_lossy(&out), expected, "{value:?}");
        }
    }

    #[test]
    fn params_tolerate_spacing() {
        let collect = |s| Params::new(s).collect::<Vec<_>>();
        let expected = vec![
            ("Credential", "A/B"),
            ("SignedHeaders", "host"),
            ("Signature", "ff"),
        ];
        for text in [
            "Credential=A/B, SignedHeaders=host, Signature=ff",
            "Credential=A/B,SignedHeaders=host,Signature=ff",
            " Credential = A/B ,SignedHeaders= host  Signature =ff,",
            "Credential=A/B stray SignedHeaders=host, Signature=ff",
        ] {
            assert_eq!(collect(text), expected, "{text:?}");
        }
        assert!(collect("").is_empty());
        assert!(collect(" , ,").is_empty());
    }

    #[test]
    fn iso_basic_dates() {
        assert_eq!(parse_iso_basic("19700101T000000Z"), Some(0));
        assert_eq!(parse_iso_basic("20261128T070000Z"), Some(1_795_849_200));
        assert_eq!(format_iso_basic(1_795_849_200), "20261128T070000Z");
        for bad in [
            "",
            "20261128T070000",
            "20261128 070000Z",
            "20260230T000000Z",
            "20261128T240000Z",
            "2026112aT070000Z",
            "+0261128T070000Z",
            "20261128T070000Z ",
        ] {
            assert_eq!(parse_iso_basic(bad), None, "{bad:?}");
        }
    }

    /// The worked example of AWS's SigV4 documentation (IAM ListUsers, 2015-08-30).
    #[test]
    fn aws_documentation_example() -> Result<(), ApiError> {
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let key = signing_key(secret, "20150830", "us-east-1", "iam");
        let mut probe = key.clone();
        probe.update(b"");
        let mut expected_key = [0u8; 32];
        let _ = hex::decode_to_slice(
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9",
            &mut expected_key,
        );
        let mut reference = keyed(&expected_key);
        reference.update(b"");
        assert_eq!(
            probe.finalize().into_bytes(),
            reference.finalize().into_bytes()
        );

        let mut credentials = Credentials::new();
        credentials
            .add("AKIDEXAMPLE", secret)
            .map_err(|e| ApiError::server(e.to_string()))?;
        let verifier = SigV4Verifier::new(credentials);
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        headers.insert("host", HeaderValue::from_static("iam.amazonaws.com"));
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        headers.insert(
            "authorization",
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, \
                 Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
            ),
        );
        let req = RequestParts::new("GET", "/", "Action=ListUsers&Version=2010-05-08", &headers);
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160 + 60);
        let auth = verifier.verify(&req, b"", now)?;
        assert_eq!(auth.access_key_id, "AKIDEXAMPLE");
        assert_eq!(auth.service, "iam");
        Ok(())
    }
}
