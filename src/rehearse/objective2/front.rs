//! The ALB stand-in: a client-facing nginx (TLS, port 80 redirect; never reloaded) in front of
//! a router nginx that holds the target list and logs which target served each request, which
//! is where `ALBRequestCountPerTarget` comes from.
//!
//! nginx OSS cannot change an upstream without a reload, and a reload closes idle client
//! connections, which a client may be reusing at that very moment; so clients talk to the
//! front, which keeps its connections, and the front retries a closed idle connection to the
//! router itself.

use super::{Fleet, TargetState};
use crate::rehearse::nginx::proxy::{self, Hop};
use crate::rehearse::nginx::TlsFiles;
use crate::rehearse::say;
use anyhow::Result;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The load balancer's configuration: what the health-check thread and the scaling calls share.
#[derive(Debug, Clone)]
pub(super) struct Front {
    pub(super) tls: TlsFiles,
    pub(super) http_port: u16,
    pub(super) https_port: u16,
    pub(super) router_port: u16,
    /// Where the router logs `$msec $upstream_addr $status` of every request.
    pub(super) targets_log: PathBuf,
    pub(super) verbose: bool,
}

impl Front {
    /// The client-facing config: 80 -> 301 to 443, TLS, everything to the router.
    pub(super) fn alb_conf(&self) -> String {
        let (http, https, router) = (self.http_port, self.https_port, self.router_port);
        let proxy = proxy::directives(
            Hop::Edge {
                forwarded_port: Some(https),
            },
            60,
        );
        format!(
            "# bookstore rehearse: the ALB's listeners (never reloaded).\n\
             # Kept connections to the router: one that a router reload closes while idle is\n\
             # retried, POST included (the router never drops a request it has read).\n\
             upstream bookstore_alb_router {{\n\
             \x20   server 127.0.0.1:{router} max_fails=0;\n\
             \x20   keepalive 64;\n\
             }}\n\n\
             server {{\n\
             \x20   listen 127.0.0.1:{http};\n\
             \x20   location / {{\n\
             \x20       return 301 https://127.0.0.1:{https}$request_uri;\n\
             \x20   }}\n\
             }}\n\n\
             server {{\n\
             \x20   listen 127.0.0.1:{https} ssl http2;\n\
             \x20   ssl_certificate {cert};\n\
             \x20   ssl_certificate_key {key};\n\
             \x20   ssl_protocols TLSv1.2 TLSv1.3;\n\
             \x20   ssl_session_cache shared:ALB:10m;\n\
             \x20   client_max_body_size 0;\n\
             \x20   keepalive_requests 100000;\n\
             \x20   location / {{\n\
             \x20       proxy_pass http://bookstore_alb_router;\n\
             {proxy}\
             \x20   }}\n\
             }}\n",
            cert = self.tls.cert.display(),
            key = self.tls.key.display(),
        )
    }

    /// The router config: the target list, or 503 while there is none.
    pub(super) fn router_conf(&self, targets: &[u16], generation: u64) -> String {
        let router = self.router_port;
        let upstream = if targets.is_empty() {
            String::new()
        } else {
            let servers: String = targets
                .iter()
                .map(|p| format!("    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n"))
                .collect();
            format!("upstream bookstore_alb_targets {{\n{servers}    keepalive 64;\n}}\n\n")
        };
        let route = if targets.is_empty() {
            "        return 503;\n".to_string()
        } else {
            "        proxy_pass http://bookstore_alb_targets;\n".to_string()
        };
        let proxy = proxy::directives(
            Hop::Router {
                forwarded_port: true,
            },
            60,
        );
        format!(
            "# bookstore rehearse: the ALB's target group (generation {generation}); rewritten on\n\
             # every registration change and reloaded. The targets log counts requests per target.\n\
             log_format bookstore_targets '$msec $upstream_addr $status';\n\
             {upstream}\
             server {{\n\
             \x20   listen 127.0.0.1:{router};\n\
             \x20   client_max_body_size 0;\n\
             \x20   access_log {log} bookstore_targets;\n\
             \x20   location = /__rehearsal/generation {{\n\
             \x20       access_log off;\n\
             \x20       return 200 \"{generation}\";\n\
             \x20   }}\n\
             \x20   location / {{\n\
             {route}\
             {proxy}\
             \x20   }}\n\
             }}\n",
            log = self.targets_log.display(),
        )
    }

    /// Recomputes which targets get traffic and reloads the router when that changed. Returns
    /// the generation to wait for, if a reload happened.
    pub(super) fn reconcile(&self, fleet: &mut Fleet) -> Result<Option<u64>> {
        let live: Vec<_> = fleet
            .instances
            .values()
            .filter(|i| i.state != TargetState::Draining)
            .collect();
        let mut routed: Vec<u16> = live
            .iter()
            .filter(|i| i.state == TargetState::Healthy)
            .map(|i| i.nginx_port)
            .collect();
        if routed.is_empty() {
            // The ALB routes to every target when none is healthy (fail open).
            routed = live
                .iter()
                .filter(|i| i.state == TargetState::Unhealthy)
                .map(|i| i.nginx_port)
                .collect();
        }
        if routed == fleet.routed {
            return Ok(None);
        }
        fleet.generation += 1;
        let conf = self.router_conf(&routed, fleet.generation);
        fleet
            .router
            .as_ref()
            .expect("the router runs")
            .reload(&conf)?;
        let names: Vec<&str> = fleet
            .instances
            .values()
            .filter(|i| routed.contains(&i.nginx_port))
            .map(|i| i.id.as_str())
            .collect();
        say(
            self.verbose,
            format!("load balancer: routing to [{}]", names.join(", ")),
        );
        fleet.routed = routed;
        Ok(Some(fleet.generation))
    }
}

/// Counts the router's requests per target port from its targets log, as it grows.
#[derive(Debug)]
pub(super) struct RequestCounter {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl RequestCounter {
    /// Counts from the current end of `path` (or its start, when it does not exist yet).
    pub(super) fn new(path: &Path) -> RequestCounter {
        let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        RequestCounter {
            path: path.to_path_buf(),
            offset,
            partial: String::new(),
        }
    }

    /// Requests per target port completed since the previous call.
    pub(super) fn take(&mut self) -> HashMap<u16, u64> {
        let mut counts = HashMap::new();
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return counts;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            self.offset = 0; // rotated or truncated
            self.partial.clear();
        }
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return counts;
        }
        let mut buf = String::new();
        if let Ok(n) = f.read_to_string(&mut buf) {
            self.offset += n as u64;
        }
        let text = std::mem::take(&mut self.partial) + &buf;
        let complete = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
        for line in text[..complete].lines() {
            if let Some(port) = served_by(line) {
                *counts.entry(port).or_insert(0) += 1;
            }
        }
        self.partial = text[complete..].to_string();
        counts
    }
}

/// The port of the target that answered a `$msec $upstream_addr $status` line (the last of a
/// retried request's addresses; none for a request the router answered itself).
fn served_by(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    let _msec = parts.next()?;
    let rest: Vec<&str> = parts.collect();
    // `$upstream_addr` may be "a, b : c" (retries, internal redirects); the status is last.
    let addrs = rest.get(..rest.len().checked_sub(1)?)?.join(" ");
    let last = addrs
        .rsplit([',', ':'])
        .next()
        .filter(|s| !s.trim().is_empty())?;
    // rsplit on ':' gives the port of the last address.
    last.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_target_that_answered() {
        assert_eq!(served_by("1718000000.123 127.0.0.1:4001 200"), Some(4001));
        assert_eq!(
            served_by("1718000000.123 127.0.0.1:4001, 127.0.0.1:4002 200"),
            Some(4002)
        );
        assert_eq!(served_by("1718000000.123 - 503"), None);
        assert_eq!(served_by("garbage"), None);
    }

    #[test]
    fn reads_only_complete_new_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("targets.log");
        std::fs::write(&p, "1.0 127.0.0.1:1 200\n").unwrap();
        let mut c = RequestCounter::new(&p);
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        write!(f, "2.0 127.0.0.1:7 200\n3.0 127.0.0.1:7 20").unwrap();
        let counts = c.take();
        assert_eq!(counts.get(&7), Some(&1));
        assert_eq!(
            counts.get(&1),
            None,
            "lines before the start are not counted"
        );
        writeln!(f, "0").unwrap();
        assert_eq!(c.take().get(&7), Some(&1));
        assert!(c.take().is_empty());
    }
}
