//! A minimal ClickHouse HTTP client: one statement per request, parameters bound server-side.

use std::time::Duration;

use trackstack_store::{StoreError, StoreResult};

/// Where and as whom to connect, parsed from `clickhouse://[USER[:PASSWORD]@]HOST:PORT/DATABASE`.
#[derive(Clone)]
pub struct Endpoint {
    pub base_url: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("base_url", &self.base_url).field("database", &self.database).finish()
    }
}

impl Endpoint {
    /// Parses the part of the URI after `clickhouse://`.
    pub fn parse(location: &str) -> Result<Endpoint, String> {
        let (userinfo, rest) = match location.rsplit_once('@') {
            Some((userinfo, rest)) => (Some(userinfo), rest),
            None => (None, location),
        };
        let (host, database) = rest.split_once('/').unwrap_or((rest, "trackstack"));
        let database = database.split('?').next().unwrap_or_default();
        if host.is_empty() {
            return Err("the ClickHouse URI has no host".to_owned());
        }
        let database = if database.is_empty() { "trackstack" } else { database };
        if !database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("database name `{database}` must be letters, digits and `_`"));
        }
        let (user, password) = match userinfo.map(|u| u.split_once(':').unwrap_or((u, ""))) {
            Some((user, password)) => (Some(user.to_owned()), Some(password.to_owned()).filter(|p| !p.is_empty())),
            None => (None, None),
        };
        Ok(Endpoint { base_url: format!("http://{host}/"), database: database.to_owned(), user, password })
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: Endpoint,
}

/// A query parameter bound to a `{name:Type}` placeholder.
pub type Param<'a> = (&'a str, String);

impl Client {
    pub fn new(endpoint: Endpoint) -> StoreResult<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(StoreError::backend)?;
        Ok(Client { http, endpoint })
    }

    pub fn database(&self) -> &str {
        &self.endpoint.database
    }

    /// Runs a statement that returns nothing (DDL, mutations).
    pub async fn execute(&self, sql: &str, params: &[Param<'_>], settings: &[(&str, &str)]) -> StoreResult<()> {
        self.send(sql, None, params, settings, false).await.map(drop)
    }

    /// Runs a query and returns its output (the query names its FORMAT).
    pub async fn fetch(&self, sql: &str, params: &[Param<'_>], settings: &[(&str, &str)]) -> StoreResult<String> {
        self.send(sql, None, params, settings, true).await
    }

    /// Runs `INSERT … FORMAT X` with `data` as the body.
    pub async fn insert(&self, sql: &str, data: Vec<u8>, settings: &[(&str, &str)]) -> StoreResult<()> {
        self.send(sql, Some(data), &[], settings, false).await.map(drop)
    }

    async fn send(
        &self,
        sql: &str,
        data: Option<Vec<u8>>,
        params: &[Param<'_>],
        settings: &[(&str, &str)],
        with_database: bool,
    ) -> StoreResult<String> {
        let mut query: Vec<(String, String)> = Vec::new();
        if with_database {
            query.push(("database".into(), self.endpoint.database.clone()));
        }
        query.extend(params.iter().map(|(name, value)| (format!("param_{name}"), value.clone())));
        query.extend(settings.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
        // The statement goes in the URL when the body carries data, as ClickHouse's HTTP interface expects.
        let body = match data {
            Some(data) => {
                query.push(("query".into(), sql.to_owned()));
                data
            }
            None => sql.as_bytes().to_vec(),
        };
        let mut request = self.http.post(&self.endpoint.base_url).query(&query).body(body);
        if let Some(user) = &self.endpoint.user {
            request = request.header("X-ClickHouse-User", user);
        }
        if let Some(password) = &self.endpoint.password {
            request = request.header("X-ClickHouse-Key", password);
        }
        let response = request.send().await.map_err(|e| StoreError::Backend(format!("clickhouse unreachable: {e}")))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| StoreError::Backend(format!("clickhouse response lost: {e}")))?;
        // A server may also fail after sending 200, appending the exception to the body.
        if !status.is_success() || text.contains("DB::Exception") && text.starts_with("Code:") {
            let first_line = text.lines().next().unwrap_or_default();
            return Err(StoreError::Backend(format!("clickhouse error ({status}): {first_line}")));
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    #[test]
    fn uris_give_host_database_and_credentials() {
        let e = Endpoint::parse("reader:s3cret@ch.internal:8123/metrics").unwrap();
        assert_eq!((e.base_url.as_str(), e.database.as_str()), ("http://ch.internal:8123/", "metrics"));
        assert_eq!((e.user.as_deref(), e.password.as_deref()), (Some("reader"), Some("s3cret")));
        let plain = Endpoint::parse("127.0.0.1:8123").unwrap();
        assert_eq!((plain.database.as_str(), plain.user), ("trackstack", None));
        assert!(Endpoint::parse("h:1/bad-name").is_err());
        assert!(!format!("{e:?}").contains("s3cret"));
    }
}
