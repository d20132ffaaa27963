//! Where requests go and how they are signed: the endpoint, the access key, and SigV4
//! signing of complete HTTP/1.1 requests, ready to be written to a socket as they are.

use std::fmt;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::time::SystemTime;

use anyhow::{Context, bail};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SigningParams, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use rand::Rng;

/// The prefix of every ECS target (`X-Amz-Target`).
pub const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";
/// The content type the SDKs send.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// The service name in the credential scope, as the SDKs sign for ECS.
const SERVICE: &str = "ecs";

/// An access key, `ID:SECRET` on the command line. `Debug` does not show the secret.
#[derive(Clone)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
}

impl AccessKey {
    /// A fresh key in AWS's shape ("AKIA" and 16 uppercase alphanumerics; a 40-character
    /// secret), for a server this benchmark starts itself.
    pub fn generate() -> Self {
        const ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        const SECRET_CHARS: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut rng = rand::rng();
        let mut pick = |chars: &[u8], n: usize| -> String {
            (0..n)
                .map(|_| char::from(chars[rng.random_range(0..chars.len())]))
                .collect()
        };
        let id = format!("AKIA{}", pick(ID_CHARS, 16));
        let secret = pick(SECRET_CHARS, 40);
        Self { id, secret }
    }
}

impl fmt::Display for AccessKey {
    /// The `ID:SECRET` form `berth server --access-key` takes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.id, self.secret)
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl FromStr for AccessKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok(Self {
                id: id.to_string(),
                secret: secret.to_string(),
            }),
            _ => Err("expected ACCESS_KEY_ID:SECRET_ACCESS_KEY".to_string()),
        }
    }
}

/// A plain-HTTP endpoint: `http://HOST[:PORT][/PATH]`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `HOST[:PORT]` as given: the `Host` header and the signed host.
    pub authority: String,
    /// The request path, `/` unless the URL names another.
    pub path: String,
    /// Where to connect.
    pub address: SocketAddr,
}

impl Endpoint {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("endpoint {url:?}: only http:// endpoints are supported");
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            bail!("endpoint {url:?} names no host");
        }
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let address = with_port
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {authority}"))?
            .next()
            .with_context(|| format!("{authority} resolves to no address"))?;
        Ok(Self {
            authority: authority.to_string(),
            path: path.to_string(),
            address,
        })
    }

    /// The endpoint of a local server listening on `address`.
    pub fn local(address: SocketAddr) -> Self {
        Self {
            authority: address.to_string(),
            path: "/".to_string(),
            address,
        }
    }
}

/// Signs ECS requests with one access key, for one region and endpoint.
pub struct Signer {
    credentials: Credentials,
    region: String,
    endpoint: Endpoint,
}

impl Signer {
    pub fn new(key: &AccessKey, region: &str, endpoint: Endpoint) -> Self {
        let credentials = Credentials::new(&key.id, &key.secret, None, None, "berth-bench");
        Self {
            credentials,
            region: region.to_string(),
            endpoint,
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The complete HTTP/1.1 request (head and body) for ECS `operation` with the JSON
    /// `body`, signed as of `time`. A signature is accepted for 15 minutes.
    pub fn request(
        &self,
        operation: &str,
        body: &[u8],
        time: SystemTime,
    ) -> anyhow::Result<Vec<u8>> {
        let target = format!("{TARGET_PREFIX}{operation}");
        let length = body.len().to_string();
        let headers = [
            ("content-type", CONTENT_TYPE),
            ("x-amz-target", target.as_str()),
            ("content-length", length.as_str()),
        ];
        let uri = format!("http://{}{}", self.endpoint.authority, self.endpoint.path);
        let identity = self.credentials.clone().into();
        let params: SigningParams<'_> = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .context("cannot set up SigV4 signing")?
            .into();
        let signable = SignableRequest::new(
            "POST",
            uri,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .context("cannot sign the request")?;
        let (instructions, _signature) = sign(signable, &params)
            .context("cannot sign the request")?
            .into_parts();

        let mut out = Vec::with_capacity(body.len() + 640);
        write!(
            out,
            "POST {} HTTP/1.1\r\nhost: {}\r\n",
            self.endpoint.path, self.endpoint.authority
        )?;
        for (name, value) in headers.iter().copied().chain(instructions.headers()) {
            write!(out, "{name}: {value}\r\n")?;
        }
        out.extend_from_slice(b"user-agent: berth-bench\r\n\r\n");
        out.extend_from_slice(body);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_key_parses_id_and_secret_with_colons() -> Result<(), String> {
        let key: AccessKey = "AKIAEXAMPLE:se:cret".parse()?;
        assert_eq!(key.id, "AKIAEXAMPLE");
        assert_eq!(key.secret, "se:cret");
        assert!("nosecret".parse::<AccessKey>().is_err());
        assert!(":x".parse::<AccessKey>().is_err());
        assert!(!format!("{key:?}").contains("cret"));
        Ok(())
    }

    #[test]
    fn generated_keys_have_aws_shape() {
        let key = AccessKey::generate();
        assert_eq!(key.id.len(), 20);
        assert!(key.id.starts_with("AKIA"));
        assert_eq!(key.secret.len(), 40);
        assert!(!key.secret.contains(':'));
    }

    #[test]
    fn endpoint_parsing() -> anyhow::Result<()> {
        let e = Endpoint::parse("http://127.0.0.1:7474")?;
        assert_eq!(e.authority, "127.0.0.1:7474");
        assert_eq!(e.path, "/");
        assert_eq!(e.address.port(), 7474);
        let e = Endpoint::parse("http://127.0.0.1/ecs")?;
        assert_eq!(e.path, "/ecs");
        assert_eq!(e.address.port(), 80);
        assert!(Endpoint::parse("https://127.0.0.1").is_err());
        assert!(Endpoint::parse("http:///").is_err());
        Ok(())
    }

    #[test]
    fn signed_request_is_complete_http() -> anyhow::Result<()> {
        let key = AccessKey {
            id: "AKIDEXAMPLE".into(),
            secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        };
        let signer = Signer::new(&key, "us-east-1", Endpoint::parse("http://127.0.0.1:7474")?);
        let body = br#"{"clusters":["default"]}"#;
        let raw = signer.request("DescribeClusters", body, SystemTime::now())?;
        let text = String::from_utf8(raw)?;
        let (head, rest) = text.split_once("\r\n\r\n").context("no end of head")?;
        assert_eq!(rest.as_bytes(), body);
        assert!(head.starts_with("POST / HTTP/1.1\r\nhost: 127.0.0.1:7474\r\n"));
        assert!(head.contains("x-amz-target: AmazonEC2ContainerServiceV20141113.DescribeClusters"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.contains("x-amz-date: "));
        let authorization = head
            .lines()
            .find_map(|l| l.strip_prefix("authorization: "))
            .context("no authorization header")?;
        assert!(authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
        assert!(authorization.contains("/us-east-1/ecs/aws4_request"));
        assert!(
            authorization
                .contains("SignedHeaders=content-length;content-type;host;x-amz-date;x-amz-target")
        );
        Ok(())
    }
}
