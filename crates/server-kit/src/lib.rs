//! HTTP plumbing the roles share: [`ApiError`] (the JSON error body for every failure, from the closed code
//! table in `trackstack_domain::error`), the [`Json`] and [`Query`] extractors, which turn malformed input
//! into those errors with the offending field named instead of axum's plain-text rejections, and the
//! [`uniform_errors`] and [`record_http_metrics`] middleware.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use trackstack_domain::{Error, ErrorCode};
use trackstack_store::StoreError;

/// Any failure a handler returns; rendered as `{"error": {"code", "message", "field"?}}`.
#[derive(Debug)]
pub struct ApiError(pub Error);

pub type ApiResult<T> = Result<T, ApiError>;

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError(error)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        if matches!(error, StoreError::Backend(_)) {
            tracing::error!(error = %error, "storage failure");
        }
        ApiError(error.into())
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let Error { code, message, field } = &self.0;
        let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(code = %code, message = %message, "request failed");
        }
        let body = ErrorBody { error: ErrorDetail { code: code.as_str(), message, field: field.as_deref() } };
        let mut response = (status, axum::Json(body)).into_response();
        if *code == ErrorCode::Unavailable {
            // Saturation passes quickly (a flush, a burst); tell clients when to come back rather than let them spin.
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        response
    }
}

/// A JSON body: checks the content type, bounds the size, and reports parse errors with their field path.
pub struct Json<T>(pub T);

/// What `503 unavailable` answers carry as `Retry-After`.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// The largest request body (JSON, or a protobuf ingest batch) accepted after decompression; set per router as a
/// request extension.
#[derive(Debug, Clone, Copy)]
pub struct JsonBodyLimit(pub usize);

impl JsonBodyLimit {
    /// The limit the router set for this request (32 MiB when none was).
    pub fn of(request: &Request) -> usize {
        request.extensions().get::<JsonBodyLimit>().map_or(32 * 1024 * 1024, |l| l.0)
    }
}

/// The request's media type, lowercased and without parameters (`application/json; charset=utf-8` →
/// `application/json`); `None` when it has no (readable) Content-Type.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
}

fn is_json_content_type(headers: &HeaderMap) -> bool {
    if headers.get(header::CONTENT_TYPE).is_none() {
        // curl and many scripts omit it; the body still has to parse as JSON.
        return true;
    }
    let Some(mime) = media_type(headers) else { return false };
    // `curl -d` labels bodies as form data by default; the body still has to parse as JSON.
    mime == "application/json"
        || mime == "application/x-www-form-urlencoded"
        || (mime.starts_with("application/") && mime.ends_with("+json"))
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers()) {
            return Err(Error::new(ErrorCode::UnsupportedMediaType, "expected Content-Type: application/json").into());
        }
        let limit = JsonBodyLimit::of(&req);
        let bytes = read_body(req.into_body(), limit).await?;
        parse_json(&bytes).map(Json)
    }
}

/// Reads a whole body, failing with `payload_too_large` past `limit` bytes (counted after decompression).
pub async fn read_body(body: axum::body::Body, limit: usize) -> ApiResult<bytes::Bytes> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buffer = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| Error::new(ErrorCode::MalformedRequest, format!("cannot read the request body: {e}")))?;
        if buffer.len() + chunk.len() > limit {
            return Err(payload_too_large(limit));
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

pub fn payload_too_large(limit: usize) -> ApiError {
    ApiError(Error::new(ErrorCode::PayloadTooLarge, format!("the request body exceeds the limit of {limit} bytes")))
}

/// Parses JSON, naming the path of the first bad field (`metrics[3].step`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(json_error)?;
    deserializer
        .end()
        .map_err(|e| Error::new(ErrorCode::MalformedRequest, format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

fn json_error(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = error.path().to_string();
    let inner = error.into_inner();
    let message = inner.to_string();
    let error = match inner.classify() {
        serde_json::error::Category::Data => Error::new(ErrorCode::InvalidArgument, message),
        _ => Error::new(ErrorCode::MalformedRequest, format!("the body is not valid JSON: {message}")),
    };
    let field = if error.code == ErrorCode::InvalidArgument { field_path(&path, &error.message) } else { None };
    ApiError(match field {
        Some(field) => error.with_field(field),
        None => error,
    })
}

/// The field a deserialization error is about. serde reports a missing field at its parent's path and names
/// it only in the message (`missing field `key``), so the two are joined here.
fn field_path(path: &str, message: &str) -> Option<String> {
    let parent = match path {
        "" | "." | "?" => None,
        path => Some(path),
    };
    let missing = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next());
    match (parent, missing) {
        (Some(parent), Some(child)) => Some(format!("{parent}.{child}")),
        (None, Some(child)) => Some(child.to_owned()),
        (Some(parent), None) => Some(parent.to_owned()),
        (None, None) => None,
    }
}

/// Query-string parameters, with bad values reported as `invalid_argument` naming the parameter.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded_deserializer(query);
        serde_path_to_error::deserialize(deserializer).map(Query).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let error = Error::new(ErrorCode::InvalidArgument, format!("bad query parameter: {message}"));
            ApiError(match field_path(&path, &message) {
                Some(field) => error.with_field(field),
                None => error,
            })
        })
    }
}

fn serde_urlencoded_deserializer(query: &str) -> serde_urlencoded::Deserializer<'_> {
    serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()))
}

/// Answers routes that do not exist with a JSON `not_found`.
pub async fn route_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(Error::not_found(format!("no route for {}", uri.path())))
}

/// Answers a known route called with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError(Error::new(ErrorCode::MethodNotAllowed, "this route does not support that method"))
}

/// Middleware that rewrites error responses produced outside our handlers (axum's extractor rejections,
/// tower layers such as decompression) into the JSON error body, so every error has one shape.
pub async fn uniform_errors(request: Request, next: axum::middleware::Next) -> Response {
    let is_head = request.method() == axum::http::Method::HEAD;
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_head || is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let code = match status {
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        s if s.is_client_error() => ErrorCode::InvalidArgument,
        _ => ErrorCode::Internal,
    };
    let text = match axum::body::to_bytes(response.into_body(), 64 * 1024).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
        _ if code == ErrorCode::UnsupportedMediaType => {
            "unsupported Content-Encoding; request bodies may be sent plain, gzip or zstd".to_owned()
        }
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let mut rewritten = ApiError(Error::new(code, text)).into_response();
    *rewritten.status_mut() = status;
    rewritten
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturation_tells_clients_when_to_retry() {
        let busy = ApiError(Error::new(ErrorCode::Unavailable, "busy")).into_response();
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.headers().get(header::RETRY_AFTER).unwrap(), RETRY_AFTER_SECONDS);
        let invalid = ApiError(Error::invalid("x", "bad")).into_response();
        assert!(invalid.headers().get(header::RETRY_AFTER).is_none());
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Batch {
        metrics: Vec<Point>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Point {
        step: i64,
    }

    #[test]
    fn type_errors_name_the_field() {
        let err = parse_json::<Batch>(br#"{"metrics": [{"step": 1}, {"step": 1.5}]}"#).unwrap_err().0;
        assert_eq!((err.code, err.field.as_deref()), (ErrorCode::InvalidArgument, Some("metrics[1].step")));
    }

    #[test]
    fn missing_fields_are_named_with_their_parent() {
        let err = parse_json::<Batch>(br#"{"metrics": [{}]}"#).unwrap_err().0;
        assert_eq!((err.code, err.field.as_deref()), (ErrorCode::InvalidArgument, Some("metrics[0].step")));
        let err = parse_json::<Batch>(br#"{}"#).unwrap_err().0;
        assert_eq!(err.field.as_deref(), Some("metrics"));
    }

    #[test]
    fn syntax_errors_are_malformed_requests() {
        let err = parse_json::<Batch>(br#"{"metrics": [}"#).unwrap_err().0;
        assert_eq!(err.code, ErrorCode::MalformedRequest);
        let err = parse_json::<Batch>(br#"{"metrics": []} trailing"#).unwrap_err().0;
        assert_eq!(err.code, ErrorCode::MalformedRequest);
    }
}

/// Names of the metrics the HTTP layer records (Prometheus exposition at `/metrics`).
pub mod metric_names {
    /// Requests answered, by `method`, `route` (the route template) and `status`.
    pub const HTTP_REQUESTS: &str = "trackstack_http_requests_total";
    /// Time to answer, in seconds, by `method` and `route`.
    pub const HTTP_REQUEST_DURATION: &str = "trackstack_http_request_duration_seconds";
}

/// Middleware that counts and times every request, labelled by the matched route template (never the raw
/// path, which would explode the label set).
pub async fn record_http_metrics(request: Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(metric_names::HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(metric_names::HTTP_REQUEST_DURATION, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
