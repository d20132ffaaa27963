//! SigV4 signing of the agent's requests, with AWS's own signer.

use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use http::{HeaderMap, HeaderValue};

use super::ClientError;

/// An access key and the region to sign for.
#[derive(Clone)]
pub struct Signer {
    identity: aws_smithy_runtime_api::client::identity::Identity,
    region: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(access_key_id: &str, secret: &str, region: &str) -> Self {
        let credentials = aws_credential_types::Credentials::new(
            access_key_id,
            secret,
            None,
            None,
            "berth-agent",
        );
        Self {
            identity: credentials.into(),
            region: region.to_string(),
        }
    }

    /// Signs a request for the `ecs` service: adds `Authorization` and `X-Amz-Date` to
    /// `headers`, which must already hold `host` and whatever else is to be signed.
    pub fn sign(
        &self,
        method: &str,
        uri: &str,
        headers: &mut HeaderMap,
        body: &[u8],
    ) -> Result<(), ClientError> {
        let signing_error = |err: &dyn std::fmt::Display| ClientError::Signing(err.to_string());
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("ecs")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| signing_error(&e))?
            .into();
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let signable =
            SignableRequest::new(method, uri, pairs.into_iter(), SignableBody::Bytes(body))
                .map_err(|e| signing_error(&e))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| signing_error(&e))?
            .into_parts();
        let (new_headers, _) = instructions.into_parts();
        for header in new_headers {
            let value = HeaderValue::from_str(header.value()).map_err(|e| signing_error(&e))?;
            headers.insert(header.name(), value);
        }
        Ok(())
    }
}
