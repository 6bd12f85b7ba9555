//! Configuration from the environment (and an optional env-style `--config` file), validated up front.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

mod vars;

use vars::{host_name, number, parse_env_file, secret};

/// A configuration problem; the message names the variable and what to do.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// Everything the shop needs to run, after validation.
#[derive(Clone)]
pub struct Config {
    /// `mysql://user[:password]@host:port/db` (the password may be overridden by `database_password`).
    pub database_url: String,
    /// Overrides the URL's password when set.
    pub database_password: Option<String>,
    /// `BOOKSTORE_DATABASE_PASSWORD_FILE`: re-read when the database refuses the login (rotation).
    pub database_password_file: Option<PathBuf>,
    /// `BOOKSTORE_DATABASE_TLS=verify`: TLS required, the server verified; `None`: plaintext.
    pub database_tls: Option<DatabaseTls>,
    /// Address to bind; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Key that signs CSRF tokens; the same on every instance.
    pub secret_key: Vec<u8>,
    /// True when the key was generated for this process only.
    pub secret_key_generated: bool,
    /// Shared covers directory (NFS/EFS mount).
    pub uploads_dir: PathBuf,
    /// Value of the `X-Bookstore-Instance` header.
    pub instance_id: String,
    /// Admin account created at start-up if absent.
    pub admin: Option<(String, String)>,
    /// Networks whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Longest graceful drain after SIGTERM.
    pub drain: Duration,
    /// How long start-up keeps waiting for the database before giving up.
    pub db_wait: Duration,
    /// How long an unpaid order holds its copies (`BOOKSTORE_RESERVATION_MINUTES`).
    pub reservation: Duration,
    /// Longest a request may take before it is answered 503 (`BOOKSTORE_REQUEST_TIMEOUT_SECONDS`).
    pub request_timeout: Duration,
    /// Longest wait for a pooled database connection (`BOOKSTORE_DB_ACQUIRE_TIMEOUT_SECONDS`).
    pub db_acquire_timeout: Duration,
    /// Longest a request holds database connections at a stretch, i.e. waits for its queries
    /// (`BOOKSTORE_DB_QUERY_TIMEOUT_SECONDS`); then 503.
    pub db_query_timeout: Duration,
    /// Longest a client may take to send a request's headers, and longest an idle keep-alive
    /// connection stays open (`BOOKSTORE_HEADER_READ_TIMEOUT_SECONDS`).
    pub header_read_timeout: Duration,
    /// Longest a client may take to send a request body (`BOOKSTORE_BODY_READ_TIMEOUT_SECONDS`).
    pub body_read_timeout: Duration,
    /// Largest cover in MiB, from the spec's `app.max_upload_mb` (`BOOKSTORE_MAX_UPLOAD_MB`).
    pub max_upload_mb: u32,
    /// Requests served at once; more get 503 (`BOOKSTORE_MAX_CONCURRENT_REQUESTS`).
    pub max_concurrent_requests: usize,
    /// Where `/metrics` is served instead of the shop's port (`BOOKSTORE_METRICS_LISTEN`).
    pub metrics_listen: Option<SocketAddr>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database", &redact_url(&self.database_url))
            .field("listen", &self.listen)
            .field("uploads_dir", &self.uploads_dir)
            .field("instance_id", &self.instance_id)
            .field("admin", &self.admin.as_ref().map(|(e, _)| e))
            .field("trusted_proxies", &self.trusted_proxies)
            .field("drain", &self.drain)
            .finish_non_exhaustive()
    }
}

/// TLS to the database: required (a server without TLS is refused), its certificate chain and
/// host name verified against `ca_file` (PEM, e.g. the RDS bundle), else the Mozilla roots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseTls {
    /// `BOOKSTORE_DATABASE_CA_FILE`.
    pub ca_file: Option<PathBuf>,
}

/// The URL without its password, safe to log.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}@{}", &url[..s + 3], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl Config {
    /// A configuration for tests: the given database URL, port 0 on loopback, a fixed key.
    pub fn for_tests(database_url: &str, uploads_dir: &Path) -> Config {
        Config {
            database_url: database_url.to_string(),
            database_password: None,
            database_password_file: None,
            database_tls: None,
            listen: "127.0.0.1:0".parse().expect("loopback address"),
            secret_key: b"test-secret-key-test-secret-key!".to_vec(),
            secret_key_generated: false,
            uploads_dir: uploads_dir.to_path_buf(),
            instance_id: "test".into(),
            admin: None,
            trusted_proxies: vec!["127.0.0.1/32".parse().expect("cidr")],
            drain: Duration::from_secs(5),
            db_wait: Duration::from_secs(60),
            reservation: Duration::from_secs(30 * 60),
            request_timeout: Duration::from_secs(30),
            db_acquire_timeout: Duration::from_secs(DEFAULT_DB_TIMEOUT_SECONDS),
            db_query_timeout: Duration::from_secs(DEFAULT_DB_TIMEOUT_SECONDS),
            header_read_timeout: Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_SECONDS),
            body_read_timeout: Duration::from_secs(30),
            max_upload_mb: 5,
            max_concurrent_requests: 512,
            metrics_listen: None,
        }
    }

    /// Reads the process environment, with values from `file` (lines of `KEY=VALUE`) as fallback.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut vars: HashMap<String, String> = HashMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!("cannot read config file {}: {e}", path.display()))
            })?;
            vars.extend(parse_env_file(&text, path)?);
        }
        for (k, v) in std::env::vars() {
            if k.starts_with("BOOKSTORE_") {
                vars.insert(k, v);
            }
        }
        Config::from_vars(&vars)
    }

    /// Builds a configuration from a map of `BOOKSTORE_*` variables.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let get = |name: &str| -> Result<Option<String>, ConfigError> { secret(vars, name) };
        let database_url = get("BOOKSTORE_DATABASE_URL")?.ok_or_else(|| {
            ConfigError(
                "BOOKSTORE_DATABASE_URL is not set; set it to mysql://user[:password]@host:port/db"
                    .into(),
            )
        })?;
        if !database_url.starts_with("mysql://") {
            return Err(ConfigError(
                "BOOKSTORE_DATABASE_URL must start with mysql:// (mysql://user[:password]@host:port/db)".into(),
            ));
        }
        let opts = mysql_async::Opts::from_url(&database_url).map_err(|e| {
            ConfigError(format!(
                "BOOKSTORE_DATABASE_URL ({}) is not a valid MySQL URL: {e}",
                redact_url(&database_url)
            ))
        })?;
        if opts.db_name().is_none_or(str::is_empty) {
            return Err(ConfigError(format!(
                "BOOKSTORE_DATABASE_URL ({}) names no database; end it with /DATABASE",
                redact_url(&database_url)
            )));
        }
        let listen = match get("BOOKSTORE_LISTEN")? {
            Some(v) => v.parse().map_err(|_| {
                ConfigError(format!(
                    "BOOKSTORE_LISTEN={v:?} is not an address like 0.0.0.0:8080"
                ))
            })?,
            None => "0.0.0.0:8080".parse().expect("default listen address"),
        };
        let (secret_key, secret_key_generated) = match get("BOOKSTORE_SECRET_KEY")? {
            Some(k) if k.len() < 16 => {
                return Err(ConfigError(
                    "BOOKSTORE_SECRET_KEY is shorter than 16 characters; use e.g. `openssl rand -hex 32`"
                        .into(),
                ))
            }
            Some(k) => (k.into_bytes(), false),
            None => {
                let mut k = vec![0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k);
                (k, true)
            }
        };
        let uploads_dir =
            PathBuf::from(get("BOOKSTORE_UPLOADS_DIR")?.unwrap_or_else(|| "./uploads".into()));
        let instance_id = match get("BOOKSTORE_INSTANCE_ID")? {
            Some(v) if !v.trim().is_empty() => v.trim().to_string(),
            _ => host_name(),
        };
        if instance_id.chars().any(|c| c.is_control()) {
            return Err(ConfigError(
                "BOOKSTORE_INSTANCE_ID contains control characters".into(),
            ));
        }
        let admin = match (get("BOOKSTORE_ADMIN_EMAIL")?, get("BOOKSTORE_ADMIN_PASSWORD")?) {
            (Some(e), Some(p)) => {
                let plausible = e.split_once('@').is_some_and(|(a, b)| {
                    !a.is_empty() && b.contains('.') && !b.starts_with('.') && !b.ends_with('.')
                }) && !e.contains(char::is_whitespace);
                if !plausible {
                    return Err(ConfigError(format!("BOOKSTORE_ADMIN_EMAIL={e:?} is not an email address")));
                }
                if p.len() < 8 {
                    return Err(ConfigError("BOOKSTORE_ADMIN_PASSWORD must be at least 8 characters".into()));
                }
                Some((e, p))
            }
            (None, None) => None,
            _ => {
                return Err(ConfigError(
                    "set both BOOKSTORE_ADMIN_EMAIL and BOOKSTORE_ADMIN_PASSWORD (or _FILE), or neither"
                        .into(),
                ))
            }
        };
        let trusted_proxies = match get("BOOKSTORE_TRUSTED_PROXIES")? {
            Some(v) => v
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<IpNet>()
                        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                        .map_err(|_| {
                            ConfigError(format!(
                                "BOOKSTORE_TRUSTED_PROXIES: {s:?} is not a CIDR like 10.0.0.0/16"
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => vec!["127.0.0.1/32".parse().expect("cidr")],
        };
        let ca_file = vars.get("BOOKSTORE_DATABASE_CA_FILE").map(PathBuf::from);
        let database_tls = match vars.get("BOOKSTORE_DATABASE_TLS").map(String::as_str) {
            None | Some("off") if ca_file.is_some() => {
                return Err(ConfigError(
                    "BOOKSTORE_DATABASE_CA_FILE is set but BOOKSTORE_DATABASE_TLS is not `verify`; set both or neither"
                        .into(),
                ))
            }
            None | Some("off") => None,
            Some("verify") => {
                if let Some(f) = &ca_file {
                    std::fs::read(f).map_err(|e| {
                        ConfigError(format!(
                            "BOOKSTORE_DATABASE_CA_FILE: cannot read {}: {e}",
                            f.display()
                        ))
                    })?;
                }
                Some(DatabaseTls { ca_file })
            }
            Some(v) => {
                return Err(ConfigError(format!(
                    "BOOKSTORE_DATABASE_TLS={v:?}: use `verify` (TLS required, the server's certificate verified) or `off`"
                )))
            }
        };
        let drain = match get("BOOKSTORE_DRAIN_SECONDS")? {
            Some(v) => Duration::from_secs(v.parse::<u64>().map_err(|_| {
                ConfigError(format!(
                    "BOOKSTORE_DRAIN_SECONDS={v:?} is not a whole number of seconds"
                ))
            })?),
            None => Duration::from_secs(20),
        };
        Ok(Config {
            database_url,
            database_password: get("BOOKSTORE_DATABASE_PASSWORD")?,
            database_tls,
            database_password_file: match vars.get("BOOKSTORE_DATABASE_PASSWORD") {
                Some(_) => None,
                None => vars
                    .get("BOOKSTORE_DATABASE_PASSWORD_FILE")
                    .map(PathBuf::from),
            },
            listen,
            secret_key,
            secret_key_generated,
            uploads_dir,
            instance_id,
            admin,
            trusted_proxies,
            drain,
            db_wait: Duration::from_secs(300),
            reservation: Duration::from_secs(
                60 * number(vars, "BOOKSTORE_RESERVATION_MINUTES", 30, 1..=7 * 24 * 60)?,
            ),
            request_timeout: Duration::from_secs(number(
                vars,
                "BOOKSTORE_REQUEST_TIMEOUT_SECONDS",
                30,
                1..=3600,
            )?),
            db_acquire_timeout: Duration::from_secs(number(
                vars,
                "BOOKSTORE_DB_ACQUIRE_TIMEOUT_SECONDS",
                DEFAULT_DB_TIMEOUT_SECONDS,
                1..=600,
            )?),
            db_query_timeout: Duration::from_secs(number(
                vars,
                "BOOKSTORE_DB_QUERY_TIMEOUT_SECONDS",
                DEFAULT_DB_TIMEOUT_SECONDS,
                1..=600,
            )?),
            header_read_timeout: Duration::from_secs(number(
                vars,
                "BOOKSTORE_HEADER_READ_TIMEOUT_SECONDS",
                DEFAULT_HEADER_READ_TIMEOUT_SECONDS,
                1..=3600,
            )?),
            body_read_timeout: Duration::from_secs(number(
                vars,
                "BOOKSTORE_BODY_READ_TIMEOUT_SECONDS",
                30,
                1..=3600,
            )?),
            max_upload_mb: number(vars, "BOOKSTORE_MAX_UPLOAD_MB", 5, 1..=1024)? as u32,
            max_concurrent_requests: number(
                vars,
                "BOOKSTORE_MAX_CONCURRENT_REQUESTS",
                512,
                1..=100_000,
            )? as usize,
            metrics_listen: match get("BOOKSTORE_METRICS_LISTEN")? {
                Some(v) => Some(v.parse().map_err(|_| {
                    ConfigError(format!(
                        "BOOKSTORE_METRICS_LISTEN={v:?} is not an address like 0.0.0.0:9100"
                    ))
                })?),
                None => None,
            },
        })
    }
}

/// Default of `BOOKSTORE_DB_ACQUIRE_TIMEOUT_SECONDS` and `BOOKSTORE_DB_QUERY_TIMEOUT_SECONDS`: a
/// hung database is answered 503 within seconds, not after the 30 s request timeout.
pub const DEFAULT_DB_TIMEOUT_SECONDS: u64 = 5;

/// Default of `BOOKSTORE_HEADER_READ_TIMEOUT_SECONDS`: it also closes idle keep-alive
/// connections, so it stays above the proxies' upstream keep-alive (nginx: 60 s), which then
/// never send a request on a connection the shop is closing.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECONDS: u64 = 65;

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_required_url() {
        assert!(Config::from_vars(&vars(&[])).is_err());
        let c = Config::from_vars(&vars(&[(
            "BOOKSTORE_DATABASE_URL",
            "mysql://u:p@db:3306/shop",
        )]))
        .unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.drain, Duration::from_secs(20));
        assert_eq!(c.db_query_timeout, Duration::from_secs(5));
        assert_eq!(c.header_read_timeout, Duration::from_secs(65));
        let c = Config::from_vars(&vars(&[
            ("BOOKSTORE_DATABASE_URL", "mysql://u:p@db:3306/shop"),
            ("BOOKSTORE_HEADER_READ_TIMEOUT_SECONDS", "2"),
            ("BOOKSTORE_BODY_READ_TIMEOUT_SECONDS", "3"),
            ("BOOKSTORE_DB_QUERY_TIMEOUT_SECONDS", "4"),
        ]))
        .unwrap();
        assert_eq!(
            (
                c.header_read_timeout,
                c.body_read_timeout,
                c.db_query_timeout
            ),
            (
                Duration::from_secs(2),
                Duration::from_secs(3),
                Duration::from_secs(4)
            )
        );
        assert!(c.secret_key_generated);
        assert_eq!(redact_url(&c.database_url), "mysql://u@db:3306/shop");
        assert!(!format!("{c:?}").contains(":p@"));
    }

    #[test]
    fn file_variants_and_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key");
        std::fs::write(&f, "0123456789abcdef0123\n").unwrap();
        let c = Config::from_vars(&vars(&[
            ("BOOKSTORE_DATABASE_URL", "mysql://u@db/shop"),
            ("BOOKSTORE_SECRET_KEY_FILE", f.to_str().unwrap()),
            ("BOOKSTORE_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1"),
        ]))
        .unwrap();
        assert_eq!(c.secret_key, b"0123456789abcdef0123");
        assert_eq!(c.trusted_proxies.len(), 2);
        for bad in [
            ("BOOKSTORE_LISTEN", "nope"),
            ("BOOKSTORE_DRAIN_SECONDS", "x"),
            ("BOOKSTORE_TRUSTED_PROXIES", "300.1.1.1/8"),
            ("BOOKSTORE_MAX_UPLOAD_MB", "0"),
            ("BOOKSTORE_RESERVATION_MINUTES", "soon"),
            ("BOOKSTORE_METRICS_LISTEN", "nope"),
            ("BOOKSTORE_MAX_CONCURRENT_REQUESTS", "0"),
            ("BOOKSTORE_DB_QUERY_TIMEOUT_SECONDS", "0"),
            ("BOOKSTORE_HEADER_READ_TIMEOUT_SECONDS", "0"),
            ("BOOKSTORE_HEADER_READ_TIMEOUT_SECONDS", "3601"),
            ("BOOKSTORE_BODY_READ_TIMEOUT_SECONDS", "soon"),
            ("BOOKSTORE_DATABASE_URL", "mysql://u@db:3306"),
            ("BOOKSTORE_DATABASE_URL", "postgres://u@db/shop"),
        ] {
            let v = vars(&[("BOOKSTORE_DATABASE_URL", "mysql://u@db/shop"), bad]);
            assert!(Config::from_vars(&v).is_err(), "{bad:?} accepted");
        }
        // The admin pair: each refusal for its own reason, shown by its message.
        let admin = |email: Option<&str>, password: Option<&str>| {
            let mut v = vars(&[("BOOKSTORE_DATABASE_URL", "mysql://u@db/shop")]);
            if let Some(e) = email {
                v.insert("BOOKSTORE_ADMIN_EMAIL".into(), e.into());
            }
            if let Some(p) = password {
                v.insert("BOOKSTORE_ADMIN_PASSWORD".into(), p.into());
            }
            Config::from_vars(&v)
                .map(|c| c.admin)
                .map_err(|e| e.to_string())
        };
        let ok = admin(Some("boss@shop.test"), Some("admin-password")).unwrap();
        assert_eq!(ok.map(|(e, _)| e).as_deref(), Some("boss@shop.test"));
        for bad_email in ["not-an-email", "a@b", "@shop.test", "a b@shop.test"] {
            let err = admin(Some(bad_email), Some("admin-password")).unwrap_err();
            assert!(err.contains("BOOKSTORE_ADMIN_EMAIL"), "{bad_email}: {err}");
        }
        let err = admin(Some("boss@shop.test"), Some("short")).unwrap_err();
        assert!(err.contains("BOOKSTORE_ADMIN_PASSWORD"), "{err}");
        let err = admin(Some("boss@shop.test"), None).unwrap_err();
        assert!(err.contains("set both"), "{err}");
    }
}
