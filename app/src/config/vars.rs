//! Reading the variables: whole numbers within a range, `NAME` or `NAME_FILE` secrets, the
//! env-style `--config` file, the host name.

use std::collections::HashMap;
use std::path::Path;

use super::ConfigError;

/// A whole number setting within `range`, or its default when unset.
pub(super) fn number(
    vars: &HashMap<String, String>,
    name: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    match vars.get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                ConfigError(format!(
                    "{name}={v:?} is not a whole number from {} to {}",
                    range.start(),
                    range.end()
                ))
            }),
    }
}

/// Reads `NAME`, or the file named by `NAME_FILE` (trailing newline removed).
pub(super) fn secret(
    vars: &HashMap<String, String>,
    name: &str,
) -> Result<Option<String>, ConfigError> {
    if let Some(v) = vars.get(name) {
        return Ok(Some(v.clone()));
    }
    let file_var = format!("{name}_FILE");
    match vars.get(&file_var) {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("{file_var}: cannot read {path}: {e}")))?;
            Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()))
        }
        None => Ok(None),
    }
}

pub(super) fn parse_env_file(
    text: &str,
    path: &Path,
) -> Result<HashMap<String, String>, ConfigError> {
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (k, v) = line.split_once('=').ok_or_else(|| {
            ConfigError(format!("{}:{}: expected KEY=VALUE", path.display(), n + 1))
        })?;
        let k = k.trim();
        if !k.starts_with("BOOKSTORE_") {
            return Err(ConfigError(format!(
                "{}:{}: unknown key {k:?}; keys start with BOOKSTORE_",
                path.display(),
                n + 1
            )));
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(v);
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

pub(super) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
