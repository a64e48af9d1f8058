//! The one place an error becomes a gRPC status: each `ErrorKind` to its code. An internal
//! error's details go to the log with the request id; the client reads only that id.

use destino_serving::{ApiError, ErrorKind};
use tonic::{Code, Status};

/// The gRPC code of an error kind.
pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidArgument | ErrorKind::UnsupportedMediaType => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::Unimplemented => Code::Unimplemented,
        ErrorKind::PayloadTooLarge | ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::DeadlineExceeded | ErrorKind::ClientTimeout => Code::DeadlineExceeded,
        ErrorKind::Unavailable | ErrorKind::BadGateway => Code::Unavailable,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::Internal => Code::Internal,
    }
}

/// The status a failed call answers; `request_id` names it in the log and, for internal
/// errors, to the client.
pub fn status(error: ApiError, request_id: &str) -> Status {
    if error.kind == ErrorKind::Internal {
        tracing::error!(request_id, "{}", error.message);
        return Status::internal(format!("internal error (request id {request_id})"));
    }
    Status::new(code(error.kind), error.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_code_and_internals_stay_in_the_log() {
        assert_eq!(code(ErrorKind::ResourceExhausted), Code::ResourceExhausted);
        assert_eq!(code(ErrorKind::DeadlineExceeded), Code::DeadlineExceeded);
        assert_eq!(code(ErrorKind::Unauthenticated), Code::Unauthenticated);
        let status = status(ApiError::internal("/secret/model.onnx: bad node"), "r-9");
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error (request id r-9)");
    }
}
