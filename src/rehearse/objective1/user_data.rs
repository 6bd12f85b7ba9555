//! What the rendered `user-data.yaml` installs on the VM (`write_files`), so that the rehearsal
//! puts each rendered file where the VM would, and runs the systemd units' commands as written.

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::time::Duration;

/// One `write_files` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct WriteFile {
    /// Where it goes on the VM.
    pub path: String,
    /// Its text.
    #[serde(default)]
    pub content: String,
    /// cloud-init's `encoding` (`gz+b64` for the gzipped scripts); decoded by [`UserData::parse`].
    #[serde(default)]
    pub encoding: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CloudConfig {
    #[serde(default)]
    write_files: Vec<WriteFile>,
}

/// The files the user-data writes.
#[derive(Debug, Clone)]
pub struct UserData {
    files: Vec<WriteFile>,
}

/// When a systemd timer fires: `OnActiveSec=` after it starts, then every `OnCalendar=*:0/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerSchedule {
    /// `OnActiveSec=`.
    pub first: Duration,
    /// The `OnCalendar=*:0/N` period.
    pub every: Duration,
}

impl UserData {
    /// Parses the rendered `#cloud-config`.
    pub fn parse(text: &str) -> Result<UserData> {
        let mut cfg: CloudConfig =
            serde_yaml::from_str(text).context("the rendered user-data.yaml is not valid YAML")?;
        for f in &mut cfg.write_files {
            match f.encoding.take().as_deref() {
                None | Some("text/plain") => {}
                Some("gz+b64") => {
                    use base64::Engine as _;
                    use std::io::Read as _;
                    let packed = base64::engine::general_purpose::STANDARD
                        .decode(f.content.trim())
                        .with_context(|| format!("{}: its gz+b64 content is not base64", f.path))?;
                    let mut text = String::new();
                    flate2::read::GzDecoder::new(packed.as_slice())
                        .read_to_string(&mut text)
                        .with_context(|| format!("{}: its gz+b64 content is not gzip", f.path))?;
                    f.content = text;
                }
                Some(other) => bail!("{}: encoding {other} is not rehearsed", f.path),
            }
        }
        Ok(UserData {
            files: cfg.write_files,
        })
    }

    /// The VM path of the file whose content is `rendered` (the text of a rendered file).
    pub fn path_of(&self, rendered: &str, what: &str) -> Result<&str> {
        self.files
            .iter()
            .find(|f| f.content.trim_end() == rendered.trim_end())
            .map(|f| f.path.as_str())
            .ok_or_else(|| anyhow!("user-data.yaml does not install {what}"))
    }

    /// The content of the file written at `path`.
    pub fn content_at(&self, path: &str) -> Result<&str> {
        self.files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.content.as_str())
            .ok_or_else(|| anyhow!("user-data.yaml writes no {path}"))
    }

    /// `KEY=value` of a systemd unit the user-data writes at `path`.
    pub fn unit_setting(&self, path: &str, key: &str) -> Result<&str> {
        let prefix = format!("{key}=");
        self.content_at(path)?
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
            .ok_or_else(|| anyhow!("{path} in user-data.yaml has no {key}="))
    }

    /// The schedule of the timer unit at `path`.
    pub fn timer(&self, path: &str) -> Result<TimerSchedule> {
        let first = self.unit_setting(path, "OnActiveSec")?;
        let first = first
            .strip_suffix('s')
            .unwrap_or(first)
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| anyhow!("{path}: cannot read OnActiveSec={first}"))?;
        let calendar = self.unit_setting(path, "OnCalendar")?;
        let Some(minutes) = calendar
            .strip_prefix("*:0/")
            .and_then(|m| m.parse::<u64>().ok())
        else {
            bail!("{path}: the rehearsal reads OnCalendar=*:0/N (every N minutes), not {calendar}");
        };
        Ok(TimerSchedule {
            first,
            every: Duration::from_secs(minutes * 60),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_and_timers() {
        let text = "#cloud-config\nwrite_files:\n- path: /usr/local/sbin/x\n  permissions: \"0755\"\n  content: |\n    #!/bin/sh\n    echo x\n- path: /etc/systemd/system/x.timer\n  content: |\n    [Timer]\n    OnActiveSec=10s\n    OnCalendar=*:0/5\n";
        let ud = UserData::parse(text).unwrap();
        assert_eq!(
            ud.path_of("#!/bin/sh\necho x", "x").unwrap(),
            "/usr/local/sbin/x"
        );
        assert!(ud.path_of("other", "the other file").is_err());
        assert_eq!(
            ud.timer("/etc/systemd/system/x.timer").unwrap(),
            TimerSchedule {
                first: Duration::from_secs(10),
                every: Duration::from_secs(300)
            }
        );
    }
}
