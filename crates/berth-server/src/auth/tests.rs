//! The verifier checked against an independent signer: AWS's own `aws-sigv4` crate,
//! the one the Rust SDK signs every request with.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use berth_model::{ApiError, ErrorCode};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::sigv4::SIGNING_KEY_CACHE_LIMIT;
use super::{Authenticated, Credentials, RequestParts, SigV4Verifier};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const BODY: &[u8] = br#"{"clusters":["default"],"include":["TAGS"]}"#;

/// 2026-11-28T07:00:00Z.
fn t0() -> SystemTime {
    SystemTime::from(time::macros::datetime!(2026-11-28 07:00:00 UTC))
}

fn verifier() -> Result<SigV4Verifier, Box<dyn std::error::Error>> {
    let mut credentials = Credentials::new();
    credentials.add(KEY_ID, SECRET)?;
    credentials.add("SECONDKEY", "another-secret")?;
    Ok(SigV4Verifier::new(credentials))
}

/// A request as berth's server sees it: origin-form path and query, headers.
#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Req {
    fn ecs(target: &str, body: &[u8]) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("localhost:7480"));
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        headers.insert(
            "x-amz-target",
            HeaderValue::from_str(&format!("AmazonEC2ContainerServiceV20141113.{target}"))
                .unwrap_or(HeaderValue::from_static("invalid")),
        );
        headers.insert("content-length", HeaderValue::from(body.len()));
        Self {
            method: "POST",
            path: "/".into(),
            query: String::new(),
            headers,
            body: body.into(),
        }
    }

    fn parts(&self) -> RequestParts<'_> {
        RequestParts::new(self.method, &self.path, &self.query, &self.headers)
    }

    fn set(&mut self, name: &'static str, value: &str) -> TestResult {
        self.headers
            .insert(HeaderName::from_static(name), HeaderValue::from_str(value)?);
        Ok(())
    }

    fn authorization(&self) -> String {
        self.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

struct Signer<'a> {
    key_id: &'a str,
    secret: &'a str,
    region: &'a str,
    service: &'a str,
    time: SystemTime,
    settings: SigningSettings,
    body: Option<SignableBody<'a>>,
}

impl<'a> Signer<'a> {
    fn new(time: SystemTime) -> Self {
        Self {
            key_id: KEY_ID,
            secret: SECRET,
            region: "us-east-1",
            service: "ecs",
            time,
            settings: SigningSettings::default(),
            body: None,
        }
    }

    /// Signs with aws-sigv4 and applies its headers (Authorization, X-Amz-Date, ...).
    fn sign(self, req: &mut Req) -> TestResult {
        let identity =
            aws_credential_types::Credentials::new(self.key_id, self.secret, None, None, "test")
                .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region)
            .name(self.service)
            .time(self.time)
            .settings(self.settings)
            .build()?
            .into();
        let mut uri = format!("http://localhost:7480{}", req.path);
        if !req.query.is_empty() {
            uri.push('?');
            uri.push_str(&req.query);
        }
        let mut headers = Vec::new();
        for (name, value) in &req.headers {
            headers.push((name.as_str(), value.to_str()?));
        }
        let body = self.body.unwrap_or(SignableBody::Bytes(&req.body));
        let signable = SignableRequest::new(req.method, uri, headers.into_iter(), body)?;
        let (instructions, _signature) = sign(signable, &params)?.into_parts();
        let (new_headers, params) = instructions.into_parts();
        assert!(params.is_empty(), "header signing adds no query parameters");
        for header in new_headers {
            req.headers
                .insert(header.name(), HeaderValue::from_str(header.value())?);
        }
        Ok(())
    }
}

fn signed(target: &str, body: &[u8]) -> Result<Req, Box<dyn std::error::Error>> {
    let mut req = Req::ecs(target, body);
    Signer::new(t0()).sign(&mut req)?;
    Ok(req)
}

fn verify(v: &SigV4Verifier, req: &Req, now: SystemTime) -> Result<Authenticated, ApiError> {
    v.verify(&req.parts(), &req.body, now)
}

#[track_caller]
fn expect_err(result: Result<Authenticated, ApiError>, code: ErrorCode, text: &str) {
    match result {
        Ok(a) => panic!("verified as {a:?}; expected {code}"),
        Err(e) => {
            assert_eq!(e.code, code, "{e}");
            assert!(
                e.message.contains(text),
                "{:?} does not contain {text:?}",
                e.message
            );
        }
    }
}

const MISMATCH: &str = "The request signature we calculated does not match the signature you \
     provided. Check your AWS Secret Access Key and signing method. Consult the service \
     documentation for details.";

/// One verifier serves every connection.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<SigV4Verifier>();
};

#[test]
fn requests_signed_by_aws_sigv4_verify() -> TestResult {
    let v = verifier()?;
    let req = signed("ListClusters", BODY)?;
    let expected = Authenticated {
        access_key_id: KEY_ID.into(),
        region: "us-east-1".into(),
        service: "ecs".into(),
    };
    // Cold, then warm cache, and within the allowed skew either way.
    assert_eq!(verify(&v, &req, t0())?, expected);
    assert_eq!(v.cached_signing_keys(), 1);
    assert_eq!(verify(&v, &req, t0())?, expected);
    assert_eq!(
        verify(&v, &req, t0() + Duration::from_secs(15 * 60))?,
        expected
    );
    assert_eq!(
        verify(&v, &req, t0() - Duration::from_secs(15 * 60))?,
        expected
    );
    assert_eq!(v.cached_signing_keys(), 1);

    // The body's hash may come precomputed.
    let hash: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(BODY).into();
    assert_eq!(
        v.verify_with_body_sha256(&req.parts(), &hash, t0())?,
        expected
    );

    // Headers nobody signed may be added on the way (proxies do).
    let mut proxied = req.clone();
    proxied.set("x-forwarded-for", "10.0.0.1")?;
    assert_eq!(verify(&v, &proxied, t0())?, expected);

    // RequestParts from an http::Request.
    let mut builder = http::Request::builder().method("POST").uri("/");
    for (name, value) in &req.headers {
        builder = builder.header(name, value);
    }
    let http_req = builder.body(())?;
    assert_eq!(
        v.verify(&RequestParts::from_request(&http_req), BODY, t0())?,
        expected
    );
    let (parts, ()) = http_req.into_parts();
    assert_eq!(
        v.verify(&RequestParts::from_http(&parts), BODY, t0())?,
        expected
    );
    Ok(())
}

#[test]
fn other_keys_regions_services_and_empty_bodies_verify() -> TestResult {
    let v = verifier()?;
    for (key_id, secret, region, service, body) in [
        ("SECONDKEY", "another-secret", "eu-west-3", "ecs", &b""[..]),
        (KEY_ID, SECRET, "local", "ecs", &b"{}"[..]),
        (KEY_ID, SECRET, "us-east-1", "execute-api", BODY),
    ] {
        let mut req = Req::ecs("DescribeClusters", body);
        let mut signer = Signer::new(t0());
        signer.key_id = key_id;
        signer.secret = secret;
        signer.region = region;
        signer.service = service;
        signer.sign(&mut req)?;
        let auth = verify(&v, &req, t0())?;
        assert_eq!(
            (
                auth.access_key_id.as_str(),
                auth.region.as_str(),
                auth.service.as_str()
            ),
            (key_id, region, service)
        );
    }
    assert_eq!(v.cached_signing_keys(), 3);
    Ok(())
}

#[test]
fn canonicalization_matches_aws_sigv4() -> TestResult {
    let v = verifier()?;
    let paths = [
        "/",
        "/a/b",
        "/a%20b/c%2Fd",
        "/a/./b/../c/",
        "/a/b/",
        "/~user/x-y_z.json",
        "//a//b",
    ];
    let queries = [
        "",
        "b=2&a=1&a=0",
        "x=a+b",
        "k=%2f%7e%20",
        "flag",
        "a=&b",
        "Action=List&Version=1",
    ];
    for path in paths {
        for query in queries {
            let mut req = Req::ecs("ListServices", BODY);
            req.method = "GET";
            req.path = path.into();
            req.query = query.into();
            Signer::new(t0()).sign(&mut req)?;
            verify(&v, &req, t0()).map_err(|e| format!("{path}?{query}: {e}"))?;
        }
    }

    // Header values: trimmed, runs of spaces collapsed, repeated headers joined.
    let mut req = Req::ecs("ListServices", BODY);
    req.set("x-amz-meta-spaces", "  a   b  c ")?;
    req.set("x-custom", "one")?;
    req.headers
        .append("x-custom", HeaderValue::from_static("two  words"));
    req.headers
        .append("x-custom", HeaderValue::from_static(" three"));
    req.set("user-agent", "aws-cli/2.15 Python/3.11")?;
    Signer::new(t0()).sign(&mut req)?;
    assert!(req.authorization().contains("x-custom"));
    verify(&v, &req, t0())?;
    Ok(())
}

#[test]
fn content_sha256_header_is_checked() -> TestResult {
    let v = verifier()?;

    let mut req = Req::ecs("ListClusters", BODY);
    let mut signer = Signer::new(t0());
    signer.settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    signer.sign(&mut req)?;
    assert!(req.headers.contains_key("x-amz-content-sha256"));
    verify(&v, &req, t0())?;

    // A declared hash that is not the body's.
    let mut other = req.clone();
    other.set("x-amz-content-sha256", &"0".repeat(64))?;
    expect_err(
        verify(&v, &other, t0()),
        ErrorCode::InvalidSignatureException,
        "x-amz-content-sha256",
    );

    // UNSIGNED-PAYLOAD: the body is not covered by the signature.
    let mut req = Req::ecs("ListClusters", BODY);
    let mut signer = Signer::new(t0());
    signer.settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    signer.body = Some(SignableBody::UnsignedPayload);
    signer.sign(&mut req)?;
    assert_eq!(
        req.headers
            .get("x-amz-content-sha256")
            .map(|h| h.as_bytes()),
        Some(&b"UNSIGNED-PAYLOAD"[..])
    );
    verify(&v, &req, t0())?;
    Ok(())
}

#[test]
fn wrong_secret_is_refused_cold_and_warm() -> TestResult {
    let v = verifier()?;
    let mut forged = Req::ecs("DeleteCluster", BODY);
    let mut signer = Signer::new(t0());
    signer.secret = "not-the-secret";
    signer.sign(&mut forged)?;

    expect_err(
        verify(&v, &forged, t0()),
        ErrorCode::InvalidSignatureException,
        MISMATCH,
    );
    assert_eq!(
        v.cached_signing_keys(),
        0,
        "a failed request must not fill the cache"
    );

    // Warm the cache for exactly this key and scope; the forgery still fails.
    verify(&v, &signed("ListClusters", BODY)?, t0())?;
    assert_eq!(v.cached_signing_keys(), 1);
    expect_err(
        verify(&v, &forged, t0()),
        ErrorCode::InvalidSignatureException,
        MISMATCH,
    );

    // The second key's secret does not sign for the first key.
    let mut crossed = Req::ecs("DeleteCluster", BODY);
    let mut signer = Signer::new(t0());
    signer.secret = "another-secret";
    signer.sign(&mut crossed)?;
    expect_err(
        verify(&v, &crossed, t0()),
        ErrorCode::InvalidSignatureException,
        MISMATCH,
    );
    Ok(())
}

#[test]
fn unknown_access_key_is_unrecognized() -> TestResult {
    let v = verifier()?;
    let mut req = Req::ecs("ListClusters", BODY);
    let mut signer = Signer::new(t0());
    signer.key_id = "AKIANOTKNOWNANYWHERE";
    signer.sign(&mut req)?;
    expect_err(
        verify(&v, &req, t0()),
        ErrorCode::UnrecognizedClientException,
        "The security token included in the request is invalid.",
    );
    Ok(())
}

#[test]
fn tampering_is_detected() -> TestResult {
    let v = verifier()?;
    let req = signed("ListClusters", BODY)?;

    let mut body = req.clone();
    body.body = br#"{"clusters":["prod"],"include":["TAGS"]}"#.to_vec();
    expect_err(
        verify(&v, &body, t0()),
        ErrorCode::InvalidSignatureException,
        MISMATCH,
    );

    let mut header = req.clone();
    header.set(
        "x-amz-target",
        "AmazonEC2ContainerServiceV20141113.DeleteCluster",
    )?;
    expect_err(
        verify(&v, &header, t0()),
        ErrorCode::InvalidSignatureException,
        MISMATCH,
    );

    let mut host = req.clone();
    host.set("host", "elsewhere:7480")?;
    expect_err(
        verify(&v, &host, t0()),
        ErrorCode::InvalidSignatureException,
        MISMATCH,
    );

    let mut path = req.clone();
    path.path = "/other".into();
    expect_err(
        verify(&v, &path, t0()),
        ErrorCode::InvalidSignatureException,
        MISMATCH,
    );

    let mut method = req.clone();
    method.method = "PUT";
    expect_err(
        verify(&v, &method, t0()),
        ErrorCode::InvalidSignatureException,
        MISMATCH,
    );

    // A replayed signature under a fresh X-Amz-Date.
    let mut date = req.clone();
    date.set("x-amz-date", "20261128T070500Z")?;
    expect_err(
        verify(&v, &date, t0()),
        ErrorCode::InvalidSignatureException,
        MISMATCH,
    );

    // A signed header removed on the way.
    let mut removed = req.clone();
    removed.headers.remove("x-amz-target");
    expect_err(
        verify(&v, &removed, t0()),
        ErrorCode::IncompleteSignatureException,
        "'x-amz-target' is not in the request",
    );

    let auth = req.authorization();
    let last = auth.chars().last().unwrap_or('0');
    let flipped = if last == '0' { '1' } else { '0' };
    let mut signature = req.clone();
    signature.set(
        "authorization",
        &format!("{}{flipped}", &auth[..auth.len() - 1]),
    )?;
    expect_err(
        verify(&v, &signature, t0()),
        ErrorCode::InvalidSignatureException,
        MISMATCH,
    );

    let mut short = req.clone();
    short.set("authorization", &auth[..auth.len() - 2])?;
    expect_err(
        verify(&v, &short, t0()),
        ErrorCode::InvalidSignatureException,
        MISMATCH,
    );
    Ok(())
}

#[test]
fn dates_out_of_the_window_are_refused() -> TestResult {
    let v = verifier()?;
    let minutes = |m: u64| Duration::from_secs(m * 60);

    // Signed 16 minutes before the server's clock.
    let req = signed("ListClusters", BODY)?;
    expect_err(
        verify(&v, &req, t0() + minutes(16)),
        ErrorCode::InvalidSignatureException,
        "Signature expired: 20261128T070000Z is now earlier than 20261128T070100Z \
         (20261128T071600Z - 15 min.)",
    );
    expect_err(
        verify(&v, &req, t0() + minutes(15) + Duration::from_secs(1)),
        ErrorCode::InvalidSignatureException,
        "Signature expired",
    );

    // Signed 16 minutes after.
    expect_err(
        verify(&v, &req, t0() - minutes(16)),
        ErrorCode::InvalidSignatureException,
        "Signature not yet current: 20261128T070000Z is still later than 20261128T065900Z \
         (20261128T064400Z + 15 min.)",
    );

    // The credential scope's date must be the request's.
    let mut scope = req.clone();
    let auth = req.authorization().replace("/20261128/", "/20261127/");
    scope.set("authorization", &auth)?;
    expect_err(
        verify(&v, &scope, t0()),
        ErrorCode::InvalidSignatureException,
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from \
         HTTP: '20261127' != '20261128', from 'X-Amz-Date'.",
    );

    // Date is used when X-Amz-Date is absent.
    let mut date = scope.clone();
    date.headers.remove("x-amz-date");
    date.set("date", "20261128T070000Z")?;
    expect_err(
        verify(&v, &date, t0()),
        ErrorCode::InvalidSignatureException,
        "from 'Date'.",
    );

    let mut none = req.clone();
    none.headers.remove("x-amz-date");
    expect_err(
        verify(&v, &none, t0()),
        ErrorCode::IncompleteSignatureException,
        "requires existence of either a 'X-Amz-Date' or a 'Date' header",
    );

    for bad in [
        "2026-11-28T07:00:00Z",
        "20261128T070000",
        "20261328T070000Z",
        "20261128T250000Z",
    ] {
        let mut malformed = req.clone();
        malformed.set("x-amz-date", bad)?;
        expect_err(
            verify(&v, &malformed, t0()),
            ErrorCode::IncompleteSignatureException,
            "Date must be in ISO-8601 'basic format'",
        );
    }
    Ok(())
}

#[test]
fn missing_authorization_is_a_missing_token() -> TestResult {
    let v = verifier()?;
    let mut req = signed("ListClusters", BODY)?;
    req.headers.remove("authorization");
    expect_err(
        verify(&v, &req, t0()),
        ErrorCode::MissingAuthenticationTokenException,
        "Missing Authentication Token",
    );
    Ok(())
}

#[test]
fn malformed_authorization_is_incomplete() -> TestResult {
    let v = verifier()?;
    let req = signed("ListClusters", BODY)?;
    let auth = req.authorization();
    let signed_headers = "content-length;content-type;host;x-amz-date;x-amz-target";
    let credential = format!("Credential={KEY_ID}/20261128/us-east-1/ecs/aws4_request");
    let sig = format!("Signature={}", "a".repeat(64));
    let cases = [
        (
            "AWS4-HMAC-SHA256".to_owned(),
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter.",
        ),
        (
            format!("AWS4-HMAC-SHA256 {credential}, SignedHeaders={signed_headers}"),
            "requires 'Signature' parameter",
        ),
        (
            format!("AWS4-HMAC-SHA256 SignedHeaders={signed_headers}, {sig}"),
            "requires 'Credential' parameter",
        ),
        (
            format!("AWS4-HMAC-SHA256 {credential}, SignedHeaders=, {sig}"),
            "requires 'SignedHeaders' parameter",
        ),
        (
            auth.replacen("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512", 1),
            "Unsupported Authorization algorithm 'AWS4-HMAC-SHA512'",
        ),
        (
            format!("AWS {KEY_ID}:c2lnbmF0dXJl"),
            "Unsupported Authorization algorithm 'AWS'",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 Credential={KEY_ID}/20261128/us-east-1/ecs, SignedHeaders={signed_headers}, {sig}"
            ),
            "is malformed",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 Credential={KEY_ID}/20261128/us-east-1/ecs/aws4_request/x, SignedHeaders={signed_headers}, {sig}"
            ),
            "is malformed",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 Credential={KEY_ID}//us-east-1/ecs/aws4_request, SignedHeaders={signed_headers}, {sig}"
            ),
            "is malformed",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 Credential={KEY_ID}/20261128/us-east-1/ecs/aws5_request, SignedHeaders={signed_headers}, {sig}"
            ),
            "valid terminator: 'aws4_request', not 'aws5_request'",
        ),
        (
            format!("AWS4-HMAC-SHA256 {credential}, SignedHeaders=content-type;x-amz-date, {sig}"),
            "'Host' or ':authority' must be a 'SignedHeader'",
        ),
        (
            format!("AWS4-HMAC-SHA256 {credential}, SignedHeaders=host;;x-amz-date, {sig}"),
            "SignedHeaders 'host;;x-amz-date' is malformed",
        ),
        (
            format!("AWS4-HMAC-SHA256 {credential}, {credential}, SignedHeaders=host, {sig}"),
            "'Credential' parameter more than once",
        ),
    ];
    for (value, expected) in cases {
        let mut bad = req.clone();
        bad.set("authorization", &value)?;
        let result = verify(&v, &bad, t0());
        match &result {
            Err(e)
                if e.code == ErrorCode::IncompleteSignatureException
                    && e.message.contains(expected) => {}
            _ => panic!("{value:?}: {result:?}; expected {expected:?}"),
        }
    }
    Ok(())
}

#[test]
fn authorization_spacing_variants_verify() -> TestResult {
    let v = verifier()?;
    let req = signed("ListClusters", BODY)?;
    let auth = req.authorization();
    let Some(params) = auth.strip_prefix("AWS4-HMAC-SHA256 ") else {
        panic!("unexpected Authorization {auth}");
    };
    let parts: Vec<&str> = params.split(", ").collect();
    assert_eq!(parts.len(), 3, "{auth}");
    let spaced: Vec<String> = parts.iter().map(|p| p.replacen('=', " = ", 1)).collect();
    let variants = [
        format!("AWS4-HMAC-SHA256 {}", parts.join(",")),
        format!("AWS4-HMAC-SHA256   {}  ", parts.join(" ,  ")),
        format!("AWS4-HMAC-SHA256 {}", parts.join(" ")),
        format!("AWS4-HMAC-SHA256 {}, {}, {}", parts[2], parts[0], parts[1]),
        format!("AWS4-HMAC-SHA256\t{}", spaced.join(", ")),
    ];
    for variant in variants {
        let mut req = req.clone();
        req.set("authorization", &variant)?;
        verify(&v, &req, t0()).map_err(|e| format!("{variant:?}: {e}"))?;
    }
    Ok(())
}

#[test]
fn signing_key_cache_is_bounded() -> TestResult {
    let v = verifier()?;
    for i in 0..=SIGNING_KEY_CACHE_LIMIT {
        let region = format!("region-{i}");
        let mut req = Req::ecs("ListClusters", b"{}");
        let mut signer = Signer::new(t0());
        signer.region = &region;
        signer.sign(&mut req)?;
        verify(&v, &req, t0())?;
        assert!(v.cached_signing_keys() <= SIGNING_KEY_CACHE_LIMIT);
    }
    // The cache was emptied once and holds the newest key.
    assert_eq!(v.cached_signing_keys(), 1);
    Ok(())
}

/// Verifications per second, cold (every request derives its signing key) and warm,
/// on one thread and on two. `cargo test -p berth-server --release auth::tests::bench
/// -- --ignored --nocapture`
#[test]
#[ignore = "benchmark; run explicitly with --ignored --nocapture"]
fn bench_verify() -> TestResult {
    let credentials = {
        let mut c = Credentials::new();
        c.add(KEY_ID, SECRET)?;
        Arc::new(c)
    };
    // A typical CLI request: a small JSON body and the headers botocore sends.
    let mut req = Req::ecs(
        "DescribeServices",
        br#"{"cluster":"default","services":["web","api","worker"],"include":["TAGS"]}"#,
    );
    req.set(
        "user-agent",
        "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64 command/ecs.describe-services",
    )?;
    req.set("accept-encoding", "identity")?;
    Signer::new(t0()).sign(&mut req)?;
    let parts = req.parts();

    let n = 200_000;
    let cold = {
        let start = Instant::now();
        for _ in 0..n / 4 {
            let v = SigV4Verifier::new(Arc::clone(&credentials));
            v.verify(&parts, &req.body, t0())?;
        }
        f64::from(n / 4) / start.elapsed().as_secs_f64()
    };
    let v = SigV4Verifier::new(Arc::clone(&credentials));
    let warm = {
        let start = Instant::now();
        for _ in 0..n {
            v.verify(&parts, &req.body, t0())?;
        }
        f64::from(n) / start.elapsed().as_secs_f64()
    };
    let two_threads = {
        let start = Instant::now();
        std::thread::scope(|s| -> TestResult {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| -> Result<(), ApiError> {
                        for _ in 0..n {
                            v.verify(&req.parts(), &req.body, t0())?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                h.join().map_err(|_| "benchmark thread panicked")??;
            }
            Ok(())
        })?;
        f64::from(2 * n) / start.elapsed().as_secs_f64()
    };
    println!("sigv4 verify, cold cache: {cold:>10.0} /s (1 thread)");
    println!("sigv4 verify, warm cache: {warm:>10.0} /s (1 thread)");
    println!("sigv4 verify, warm cache: {two_threads:>10.0} /s (2 threads)");
    Ok(())
}
