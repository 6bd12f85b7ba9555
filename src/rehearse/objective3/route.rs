//! The rendered way in (`k8s/routing.yaml`): a Gateway API `HTTPRoute` (with Envoy Gateway's
//! `BackendTrafficPolicy` for the body limit) or an `Ingress` (ingress-nginx annotations or
//! Traefik Middlewares), read into one [`Route`]; and the loopback router that plays it: a
//! gateway nginx (TLS, the HTTP->HTTPS redirect, body limit, timeouts, HSTS; never reloaded) in
//! front of an endpoints nginx holding the Ready pods (reloaded on every change, like an
//! EndpointSlice update reaching the proxy).

use super::yaml::{self, of_kind, Doc};
use crate::rehearse::nginx::proxy::{self, Hop};
use crate::rehearse::nginx::TlsFiles;
use crate::rehearse::rendered::{RenderedError, RenderedFiles};

/// The routing, as rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// `HTTPRoute bookstore` or `Ingress bookstore (class nginx)`.
    pub what: String,
    /// The host name it serves.
    pub host: String,
    /// The backend Service: (name, port).
    pub backend: (String, u16),
    /// Plain HTTP answers with this redirect status to HTTPS.
    pub redirect: Option<u16>,
    /// `Strict-Transport-Security` the route adds.
    pub hsts: Option<String>,
    /// Largest request body, bytes.
    pub body_limit: Option<u64>,
    /// Whole-request timeout, seconds.
    pub request_timeout: Option<f64>,
    /// Per-try backend timeout, seconds.
    pub backend_timeout: Option<f64>,
}

const ROUTING: &str = "k8s/routing.yaml";

impl Route {
    /// Reads `k8s/routing.yaml`.
    pub fn read(files: &RenderedFiles) -> Result<Route, RenderedError> {
        let label = files.label(ROUTING);
        let docs = yaml::docs(&label, files.get(ROUTING)?)?;
        let routes = of_kind(&docs, "HTTPRoute");
        if !routes.is_empty() {
            return gateway(&docs, &routes);
        }
        match of_kind(&docs, "Ingress").as_slice() {
            [i] => ingress(&docs, i),
            _ => Err(RenderedError {
                file: label,
                line: None,
                path: "kind".into(),
                reason: "neither an HTTPRoute nor exactly one Ingress: nothing routes to the shop"
                    .into(),
            }),
        }
    }
}

fn timeout(d: &Doc, path: &str) -> Result<Option<f64>, RenderedError> {
    match d.opt_text(path)? {
        None => Ok(None),
        Some(t) => yaml::seconds(&t)
            .map(Some)
            .ok_or_else(|| d.err(path, format!("{t:?} is not a duration such as 30s"))),
    }
}

fn gateway(docs: &[Doc], routes: &[&Doc]) -> Result<Route, RenderedError> {
    let mut main = None;
    let mut redirect = None;
    for r in routes {
        let rule = "spec.rules[0]";
        let filters = r.seq(&format!("{rule}.filters"))?;
        let is_redirect = (0..filters.len()).find(|i| {
            r.get(&format!("{rule}.filters[{i}].type"))
                .and_then(|v| v.as_str())
                == Some("RequestRedirect")
        });
        if let Some(i) = is_redirect {
            let p = format!("{rule}.filters[{i}].requestRedirect");
            if r.opt_text(&format!("{p}.scheme"))?.as_deref() == Some("https") {
                redirect = Some(r.count(&format!("{p}.statusCode"), Some(302))? as u16);
            }
        } else if r.get(&format!("{rule}.backendRefs")).is_some() {
            if main.is_some() {
                return Err(r.err(
                    "spec.rules",
                    "a second HTTPRoute with backends; the rehearsal plays one",
                ));
            }
            main = Some(*r);
        }
    }
    let r = main.ok_or_else(|| routes[0].err("spec.rules", "no HTTPRoute sends to a backend"))?;
    let rule = "spec.rules[0]";
    let mut hsts = None;
    for (i, _) in r.seq(&format!("{rule}.filters"))?.iter().enumerate() {
        let p = format!("{rule}.filters[{i}].responseHeaderModifier.set");
        for (j, _) in r.seq(&p)?.iter().enumerate() {
            if r.text(&format!("{p}[{j}].name"))?
                .eq_ignore_ascii_case("strict-transport-security")
            {
                hsts = Some(r.text(&format!("{p}[{j}].value"))?);
            }
        }
    }
    let name = r.name();
    let mut body_limit = None;
    for p in of_kind(docs, "BackendTrafficPolicy") {
        let targets = p.seq("spec.targetRefs")?;
        let ours = (0..targets.len()).any(|i| {
            p.get(&format!("spec.targetRefs[{i}].name"))
                .and_then(|v| v.as_str())
                == Some(name.as_str())
        });
        if let (true, Some(q)) = (ours, p.opt_text("spec.requestBuffer.limit")?) {
            body_limit = Some(yaml::bytes(&q).ok_or_else(|| {
                p.err(
                    "spec.requestBuffer.limit",
                    format!("{q:?} is not a size such as 6Mi"),
                )
            })?);
        }
    }
    Ok(Route {
        what: format!("HTTPRoute {name}"),
        host: r
            .opt_text("spec.hostnames[0]")?
            .unwrap_or_else(|| "*".into()),
        backend: (
            r.text(&format!("{rule}.backendRefs[0].name"))?,
            r.count(&format!("{rule}.backendRefs[0].port"), None)? as u16,
        ),
        redirect,
        hsts,
        body_limit,
        request_timeout: timeout(r, &format!("{rule}.timeouts.request"))?,
        backend_timeout: timeout(r, &format!("{rule}.timeouts.backendRequest"))?,
    })
}

fn ingress(docs: &[Doc], i: &Doc) -> Result<Route, RenderedError> {
    let ann = |k: &str| {
        i.get("metadata.annotations")
            .and_then(|m| m.get(k))
            .and_then(yaml::scalar)
    };
    let mut redirect = None;
    let mut hsts = None;
    let mut body_limit = None;
    let mut request_timeout = None;
    if let Some(size) = ann("nginx.ingress.kubernetes.io/proxy-body-size") {
        body_limit = Some(yaml::bytes(&size).ok_or_else(|| {
            i.err(
                "metadata.annotations",
                format!("proxy-body-size {size:?} is not a size such as 6m"),
            )
        })?);
    }
    if ann("nginx.ingress.kubernetes.io/ssl-redirect").as_deref() == Some("true") {
        redirect = Some(308); // ingress-nginx's http-redirect-code default
    }
    if let Some(t) = ann("nginx.ingress.kubernetes.io/proxy-read-timeout") {
        request_timeout = t.parse::<f64>().ok();
    }
    if let Some(list) = ann("traefik.ingress.kubernetes.io/router.middlewares") {
        for m in of_kind(docs, "Middleware") {
            if !list.contains(&format!("-{}@", m.name())) {
                continue;
            }
            if m.get("spec.redirectScheme").is_some() {
                let permanent = m
                    .get("spec.redirectScheme.permanent")
                    .and_then(|v| v.as_bool())
                    == Some(true);
                redirect = Some(if permanent { 301 } else { 302 });
            }
            if m.get("spec.headers.stsSeconds").is_some() {
                hsts = Some(format!(
                    "max-age={}",
                    m.count("spec.headers.stsSeconds", None)?
                ));
            }
            if m.get("spec.buffering.maxRequestBodyBytes").is_some() {
                body_limit = Some(m.count("spec.buffering.maxRequestBodyBytes", None)? as u64);
            }
        }
    }
    let b = "spec.rules[0].http.paths[0].backend.service";
    let port = match i.get(&format!("{b}.port.number")) {
        Some(_) => i.count(&format!("{b}.port.number"), None)? as u16,
        None => 0, // a named Service port: resolved against the Service
    };
    Ok(Route {
        what: format!(
            "Ingress {} (class {})",
            i.name(),
            i.opt_text("spec.ingressClassName")?.unwrap_or_default()
        ),
        host: i
            .opt_text("spec.rules[0].host")?
            .unwrap_or_else(|| "*".into()),
        backend: (i.text(&format!("{b}.name"))?, port),
        redirect,
        hsts,
        body_limit,
        request_timeout,
        backend_timeout: None,
    })
}

/// The loopback router's ports and files.
#[derive(Debug, Clone)]
pub struct Router {
    /// Plain HTTP (the gateway's `http` listener).
    pub http_port: u16,
    /// HTTPS (the `https` listener).
    pub https_port: u16,
    /// The endpoints nginx.
    pub endpoints_port: u16,
    /// The certificate cert-manager would have stored.
    pub tls: TlsFiles,
}

impl Router {
    /// The gateway's listeners as nginx (never reloaded).
    pub fn gateway_conf(&self, route: &Route) -> String {
        let (http, https, ep) = (self.http_port, self.https_port, self.endpoints_port);
        let plain = match route.redirect {
            Some(code) => format!("        return {code} https://127.0.0.1:{https}$request_uri;\n"),
            None => "        proxy_pass http://bookstore_endpoints;\n".into(),
        };
        let body = route
            .body_limit
            .map(|b| format!("{b}"))
            .unwrap_or_else(|| "0".into());
        let read = route
            .backend_timeout
            .or(route.request_timeout)
            .unwrap_or(60.0)
            .max(1.0);
        let hsts = route
            .hsts
            .as_ref()
            .map(|v| format!("        add_header Strict-Transport-Security \"{v}\" always;\n"))
            .unwrap_or_default();
        let proxy = proxy::directives(
            Hop::Edge {
                forwarded_port: None,
            },
            read,
        );
        format!(
            "# bookstore rehearse: the gateway's listeners ({what}); never reloaded.\n\
             upstream bookstore_endpoints {{\n\
             \x20   server 127.0.0.1:{ep} max_fails=0;\n\
             \x20   keepalive 64;\n\
             }}\n\n\
             server {{\n\
             \x20   listen 127.0.0.1:{http};\n\
             \x20   client_max_body_size {body};\n\
             \x20   location / {{\n\
             {plain}\
             \x20   }}\n\
             }}\n\n\
             server {{\n\
             \x20   listen 127.0.0.1:{https} ssl;\n\
             \x20   ssl_certificate {cert};\n\
             \x20   ssl_certificate_key {key};\n\
             \x20   ssl_protocols TLSv1.2 TLSv1.3;\n\
             \x20   client_max_body_size {body};\n\
             \x20   keepalive_requests 100000;\n\
             \x20   location / {{\n\
             \x20       proxy_pass http://bookstore_endpoints;\n\
             {proxy}\
             {hsts}\
             \x20   }}\n\
             }}\n",
            what = route.what,
            cert = self.tls.cert.display(),
            key = self.tls.key.display(),
        )
    }

    /// The endpoints nginx: the Ready pods' ports, or 503 while there is none (Envoy's "no
    /// healthy upstream").
    pub fn endpoints_conf(&self, pods: &[u16], generation: u64) -> String {
        let ep = self.endpoints_port;
        let (upstream, route) = if pods.is_empty() {
            (String::new(), "        return 503;\n".to_string())
        } else {
            let servers: String = pods
                .iter()
                .map(|p| format!("    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n"))
                .collect();
            (
                format!("upstream bookstore_pods {{\n{servers}    keepalive 64;\n}}\n\n"),
                "        proxy_pass http://bookstore_pods;\n".to_string(),
            )
        };
        let proxy = proxy::directives(
            Hop::Router {
                forwarded_port: false,
            },
            3600,
        );
        format!(
            "# bookstore rehearse: the Service's endpoints (Ready pods), generation {generation}.\n\
             {upstream}\
             server {{\n\
             \x20   listen 127.0.0.1:{ep};\n\
             \x20   client_max_body_size 0;\n\
             \x20   access_log off;\n\
             \x20   location = /__rehearsal/generation {{\n\
             \x20       return 200 \"{generation}\";\n\
             \x20   }}\n\
             \x20   location / {{\n\
             {route}\
             {proxy}\
             \x20   }}\n\
             }}\n"
        )
    }
}
