//! The closed table of public error codes and the error type every role returns to clients.

use std::fmt;

/// Declares the error-code table once: variant, stable wire code, HTTP status and gRPC status code.
macro_rules! error_codes {
    ($($variant:ident => ($code:literal, $http:literal, $grpc:literal)),+ $(,)?) => {
        /// A stable, documented error code. Clients branch on these strings; adding one is an API change.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($variant),+ }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The wire form, e.g. `invalid_argument`.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code),+ }
            }

            /// The HTTP status this code is answered with.
            pub fn http_status(self) -> u16 {
                match self { $(ErrorCode::$variant => $http),+ }
            }

            /// The gRPC status code (as its numeric value) this code maps to.
            pub fn grpc_code(self) -> i32 {
                match self { $(ErrorCode::$variant => $grpc),+ }
            }
        }
    };
}

error_codes! {
    InvalidArgument => ("invalid_argument", 400, 3),
    MalformedRequest => ("malformed_request", 400, 3),
    NotFound => ("not_found", 404, 5),
    MethodNotAllowed => ("method_not_allowed", 405, 12),
    AlreadyExists => ("already_exists", 409, 6),
    Conflict => ("conflict", 409, 10),
    PayloadTooLarge => ("payload_too_large", 413, 8),
    UnsupportedMediaType => ("unsupported_media_type", 415, 3),
    Unavailable => ("unavailable", 503, 14),
    Internal => ("internal", 500, 13),
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A public error: a code from the table, a message for humans and, when one input field is at fault, its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), field: None }
    }

    /// An `invalid_argument` error about one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: ErrorCode::InvalidArgument, message: message.into(), field: Some(field.into()) }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Prefixes the field path, so nested validators can report `metrics[3].key` without knowing their parent.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = Some(match self.field {
            Some(child) if child.starts_with('[') => format!("{parent}{child}"),
            Some(child) => format!("{parent}.{child}"),
            None => parent.to_owned(),
        });
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: {} (field `{field}`)", self.code, self.message),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_table_is_stable() {
        let table: Vec<(&str, u16)> = ErrorCode::ALL.iter().map(|c| (c.as_str(), c.http_status())).collect();
        assert_eq!(
            table,
            vec![
                ("invalid_argument", 400),
                ("malformed_request", 400),
                ("not_found", 404),
                ("method_not_allowed", 405),
                ("already_exists", 409),
                ("conflict", 409),
                ("payload_too_large", 413),
                ("unsupported_media_type", 415),
                ("unavailable", 503),
                ("internal", 500),
            ]
        );
    }

    #[test]
    fn nested_field_paths_compose() {
        let err = Error::invalid("key", "too long").within("[3]").within("metrics");
        assert_eq!(err.field.as_deref(), Some("metrics[3].key"));
    }
}
