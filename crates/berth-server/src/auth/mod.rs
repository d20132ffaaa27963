//! Authentication of API callers: the access keys berth accepts (`credentials`) and
//! verification of AWS Signature Version 4 (`sigv4`).
//!
//! At startup the server loads (or creates) `<data_dir>/credentials`, adds any keys
//! given on the command line, and builds one [`SigV4Verifier`] shared by all requests.
//! Each request is verified after its body is read and before it is decoded.

pub mod credentials;
pub mod sigv4;

#[cfg(test)]
mod tests;

pub use credentials::{AccessKey, CreatedKey, Credentials, CredentialsError, CredentialsFile};
pub use sigv4::{Authenticated, RequestParts, SigV4Verifier};
