//! API errors in the shape ECS returns them: an error code (`__type`), a message,
//! and the HTTP status that goes with the code.

use std::fmt;

/// The error codes berth answers with. Their names are the shape names of the ECS
/// API (botocore's ECS model), which SDKs map to typed errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    // The protocol's own.
    SerializationException,
    UnknownOperationException,
    RequestEntityTooLargeException,
    // Authentication (HTTP 403).
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
    InvalidSignatureException,
    IncompleteSignatureException,
    AccessDeniedException,
    // ECS.
    ClientException,
    InvalidParameterException,
    ClusterNotFoundException,
    ClusterContainsContainerInstancesException,
    ClusterContainsServicesException,
    ClusterContainsTasksException,
    ClusterContainsCapacityProviderException,
    ResourceNotFoundException,
    ResourceInUseException,
    TargetNotFoundException,
    AttributeLimitExceededException,
    LimitExceededException,
    UnsupportedFeatureException,
    UpdateInProgressException,
    ServiceNotFoundException,
    ServiceNotActiveException,
    PlatformUnknownException,
    PlatformTaskDefinitionIncompatibilityException,
    ServerException,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            SerializationException => "SerializationException",
            UnknownOperationException => "UnknownOperationException",
            RequestEntityTooLargeException => "RequestEntityTooLargeException",
            MissingAuthenticationTokenException => "MissingAuthenticationTokenException",
            UnrecognizedClientException => "UnrecognizedClientException",
            InvalidSignatureException => "InvalidSignatureException",
            IncompleteSignatureException => "IncompleteSignatureException",
            AccessDeniedException => "AccessDeniedException",
            ClientException => "ClientException",
            InvalidParameterException => "InvalidParameterException",
            ClusterNotFoundException => "ClusterNotFoundException",
            ClusterContainsContainerInstancesException => {
                "ClusterContainsContainerInstancesException"
            }
            ClusterContainsServicesException => "ClusterContainsServicesException",
            ClusterContainsTasksException => "ClusterContainsTasksException",
            ClusterContainsCapacityProviderException => "ClusterContainsCapacityProviderException",
            ResourceNotFoundException => "ResourceNotFoundException",
            ResourceInUseException => "ResourceInUseException",
            TargetNotFoundException => "TargetNotFoundException",
            AttributeLimitExceededException => "AttributeLimitExceededException",
            LimitExceededException => "LimitExceededException",
            UnsupportedFeatureException => "UnsupportedFeatureException",
            UpdateInProgressException => "UpdateInProgressException",
            ServiceNotFoundException => "ServiceNotFoundException",
            ServiceNotActiveException => "ServiceNotActiveException",
            PlatformUnknownException => "PlatformUnknownException",
            PlatformTaskDefinitionIncompatibilityException => {
                "PlatformTaskDefinitionIncompatibilityException"
            }
            ServerException => "ServerException",
        }
    }

    /// The HTTP status ECS answers this error with.
    pub fn http_status(self) -> u16 {
        use ErrorCode::*;
        match self {
            MissingAuthenticationTokenException
            | UnrecognizedClientException
            | InvalidSignatureException
            | IncompleteSignatureException
            | AccessDeniedException => 403,
            RequestEntityTooLargeException => 413,
            ServerException => 500,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answered to an API caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
    pub fn client(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ClientException, message)
    }
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterException, message)
    }
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::SerializationException, message)
    }
    pub fn server(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ServerException, message)
    }
    pub fn cluster_not_found() -> Self {
        Self::new(ErrorCode::ClusterNotFoundException, "Cluster not found.")
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
