//! The proxy directives of the rehearsals' load balancers, one place for both: objective 2's
//! ALB stand-in and objective 3's gateway in front (TLS ends there), and the router behind
//! each that holds the targets (the target group, the Service's endpoints).

use std::fmt::Display;

/// Which hop of a rehearsal's load balancer a `location /` is.
#[derive(Debug, Clone, Copy)]
pub enum Hop {
    /// The client-facing TLS listener: sets the forwarded headers (`X-Forwarded-Port` when
    /// given), reads a whole request before passing it on, and sends a request again on a kept
    /// connection the router closed, POST included (the router never drops one it has read).
    Edge {
        /// The `X-Forwarded-Port` to set.
        forwarded_port: Option<u16>,
    },
    /// The router behind the edge: passes the edge's forwarded headers on and tries another
    /// target on an error or a timeout.
    Router {
        /// Whether to pass `X-Forwarded-Port` on.
        forwarded_port: bool,
    },
}

/// The directives that follow a `location /`'s `proxy_pass` (or `return`), indented for it:
/// HTTP/1.1 with kept connections to the upstream, the client's `Host`, the hop's forwarded
/// headers and retries, a 2 s connect timeout and a `read_timeout` in seconds.
pub fn directives(hop: Hop, read_timeout: impl Display) -> String {
    let mut s = String::from(
        "        proxy_http_version 1.1;\n\
         \x20       proxy_set_header Connection \"\";\n\
         \x20       proxy_set_header Host $http_host;\n",
    );
    match hop {
        Hop::Edge { forwarded_port } => {
            s.push_str(
                "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                 \x20       proxy_set_header X-Forwarded-Proto https;\n",
            );
            if let Some(port) = forwarded_port {
                s.push_str(&format!(
                    "        proxy_set_header X-Forwarded-Port {port};\n"
                ));
            }
            s.push_str(
                "        proxy_request_buffering on;\n\
                 \x20       proxy_next_upstream error non_idempotent;\n",
            );
        }
        Hop::Router { forwarded_port } => {
            s.push_str(
                "        proxy_set_header X-Forwarded-For $http_x_forwarded_for;\n\
                 \x20       proxy_set_header X-Forwarded-Proto $http_x_forwarded_proto;\n",
            );
            if forwarded_port {
                s.push_str("        proxy_set_header X-Forwarded-Port $http_x_forwarded_port;\n");
            }
            s.push_str("        proxy_next_upstream error timeout;\n");
        }
    }
    s.push_str(&format!(
        "        proxy_next_upstream_tries 3;\n\
         \x20       proxy_connect_timeout 2s;\n\
         \x20       proxy_read_timeout {read_timeout}s;\n"
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edge_sets_the_forwarded_headers_and_the_router_passes_them_on() {
        let edge = directives(
            Hop::Edge {
                forwarded_port: Some(8443),
            },
            60,
        );
        assert!(edge.contains("X-Forwarded-For $proxy_add_x_forwarded_for;"));
        assert!(edge.contains("X-Forwarded-Port 8443;"));
        assert!(edge.contains("proxy_next_upstream error non_idempotent;"));
        assert!(edge.ends_with("        proxy_read_timeout 60s;\n"));
        let router = directives(
            Hop::Router {
                forwarded_port: false,
            },
            3600,
        );
        assert!(router.contains("X-Forwarded-For $http_x_forwarded_for;"));
        assert!(!router.contains("X-Forwarded-Port"));
        assert!(router.contains("proxy_next_upstream error timeout;"));
        assert!(router.lines().all(|l| l.starts_with("        proxy_")));
    }
}
