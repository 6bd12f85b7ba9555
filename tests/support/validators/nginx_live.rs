//! A real nginx serving a rendered site config on 127.0.0.1 ([`NginxLive`]), in front of
//! a test upstream, answering requests sent with curl.

use super::*;

/// A real nginx serving a rendered site config on 127.0.0.1, in front of a test upstream.
/// Stopped (and its upstream too) when dropped.
pub struct NginxLive {
    /// The name requests are sent for (SNI and Host), resolved to 127.0.0.1 by curl.
    pub domain: String,
    /// Where the config's `listen 80` went (its first listen port when it has no port 80).
    pub http_port: u16,
    /// Where the config's `listen 443` went; 0 when it does not listen on 443 (objective 2's
    /// nginx behind the load balancer speaks plain HTTP).
    pub https_port: u16,
    /// Every other listen port of the config, by its original number.
    pub ports: BTreeMap<u16, u16>,
    /// The temp webroot that replaced the ACME webroot; holds
    /// `.well-known/acme-challenge/token123` with [`ACME_TOKEN_CONTENT`].
    pub webroot: PathBuf,
    upstream: Upstream,
    child: Child,
    prefix: Prefix,
}

/// One response as curl saw it (no redirects followed).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header of that name (case-insensitive), in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl NginxLive {
    /// `GET http://DOMAIN:http_port{path}`.
    pub fn http(&self, path: &str) -> Result<HttpResponse, String> {
        self.curl(
            &format!("http://{}:{}{path}", self.domain, self.http_port),
            &[],
        )
    }

    /// `GET https://DOMAIN:https_port{path}` (certificate not verified: it is self-signed).
    pub fn https(&self, path: &str) -> Result<HttpResponse, String> {
        self.curl(
            &format!("https://{}:{}{path}", self.domain, self.https_port),
            &[],
        )
    }

    /// curl `url` with extra arguments (e.g. `-H`, `-X POST`), every name resolved to 127.0.0.1.
    pub fn curl(&self, url: &str, extra: &[&str]) -> Result<HttpResponse, String> {
        let mut cmd = tool("curl")?;
        cmd.args([
            "-sS",
            "-k",
            "-i",
            "--max-time",
            "10",
            "--noproxy",
            "*",
            "--proto",
            "=http,https",
        ]);
        for port in self.ports.values() {
            cmd.arg("--resolve")
                .arg(format!("{}:{port}:127.0.0.1", self.domain));
        }
        let run = run(cmd.args(extra).arg(url), Duration::from_secs(30))?;
        if !run.success() {
            return Err(format!(
                "{}\n--- nginx error.log ---\n{}",
                run.report(&format!("curl {url} failed")),
                self.error_log()
            ));
        }
        parse_http(&run.stdout).ok_or_else(|| run.report("curl printed no HTTP response"))
    }

    /// The request heads (request line + headers) the upstream received, oldest first.
    pub fn upstream_requests(&self) -> Vec<String> {
        self.upstream
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.prefix.dir.path().join("logs/error.log")).unwrap_or_default()
    }

    /// The site config as nginx runs it (after the rewrites).
    pub fn effective_config(&self) -> String {
        fs::read_to_string(self.prefix.dir.path().join("site.conf")).unwrap_or_default()
    }
}

impl Drop for NginxLive {
    fn drop(&mut self) {
        if let Ok(mut cmd) = nginx_cmd(&self.prefix) {
            let _ = run(cmd.args(["-s", "stop"]), Duration::from_secs(10));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn parse_http(text: &str) -> Option<HttpResponse> {
    let mut rest = text;
    loop {
        let end = rest.find("\r\n\r\n")?;
        let head = &rest[..end];
        let body = &rest[end + 4..];
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        if (100..200).contains(&status) {
            rest = body;
            continue;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        return Some(HttpResponse {
            status,
            headers,
            body: body.to_string(),
        });
    }
}

/// A port for nginx to bind: claimed, outside the ephemeral range ([`loopback_ports::port`]).
pub(super) fn free_port() -> Result<u16, String> {
    loopback_ports::port().map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

/// Rewrites a site config for a loopback run: every IPv4 `listen` to 127.0.0.1 on a fresh port
/// (IPv6 listens dropped), upstream `server` entries and literal `proxy_pass http://host:port`
/// to the test upstream, and, when the config has an `acme-challenge` location, the ACME
/// webroot (`root`/`alias` in that location, else the `root` of the server blocks) to `webroot`.
pub(super) fn rewrite_for_live(
    conf: &str,
    upstream_port: u16,
    webroot: &Path,
) -> Result<(String, BTreeMap<u16, u16>), String> {
    let mut ports = BTreeMap::new();
    let acme_root_inside = acme_location_has_root(conf);
    let has_acme = conf.contains("acme-challenge");
    let mut out = String::with_capacity(conf.len() + 256);
    let mut stack: Vec<String> = Vec::new();
    let mut webroot_rewritten = false;
    for line in conf.lines() {
        let code = strip_comment(line);
        let in_block = |kind: &str| stack.iter().any(|b| b.starts_with(kind));
        let innermost = stack.last().cloned().unwrap_or_default();
        let mut replaced = None;
        if let Some((indent, name, args)) = directive(line) {
            match name {
                "listen" => {
                    let mut words = args.split_whitespace();
                    let addr = words.next().unwrap_or("");
                    let params: Vec<&str> = words.filter(|w| !w.starts_with("ipv6only")).collect();
                    if addr.starts_with('[') {
                        replaced = Some(format!(
                            "{indent}# (IPv6 listen dropped for the loopback test) {args}"
                        ));
                    } else {
                        let port_text = addr.rsplit(':').next().unwrap_or(addr);
                        let original: u16 = port_text
                            .parse()
                            .map_err(|_| format!("cannot read the port of `listen {args};`"))?;
                        let port = match ports.get(&original) {
                            Some(p) => *p,
                            None => {
                                let p = free_port()?;
                                ports.insert(original, p);
                                p
                            }
                        };
                        let mut words = vec![format!("127.0.0.1:{port}")];
                        words.extend(params.iter().map(|s| s.to_string()));
                        replaced = Some(format!("{indent}listen {};", words.join(" ")));
                    }
                }
                "server" if innermost.starts_with("upstream") => {
                    let params: Vec<&str> = args.split_whitespace().skip(1).collect();
                    let mut words = vec![format!("127.0.0.1:{upstream_port}")];
                    words.extend(params.iter().map(|s| s.to_string()));
                    replaced = Some(format!("{indent}server {};", words.join(" ")));
                }
                "proxy_pass" => {
                    if let Some(target) = args.strip_prefix("http://") {
                        let host_end = target.find('/').unwrap_or(target.len());
                        let host = &target[..host_end];
                        let literal = host.rsplit_once(':').is_some_and(|(_, p)| {
                            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
                        });
                        if literal {
                            replaced = Some(format!(
                                "{indent}proxy_pass http://127.0.0.1:{upstream_port}{};",
                                &target[host_end..]
                            ));
                        }
                    }
                }
                "root" | "alias" => {
                    let in_acme = stack
                        .iter()
                        .any(|b| b.starts_with("location") && b.contains("acme-challenge"));
                    let server_level = innermost.starts_with("server") && in_block("server");
                    if in_acme && name == "root" {
                        replaced = Some(format!("{indent}root {};", webroot.display()));
                    } else if in_acme {
                        replaced = Some(format!(
                            "{indent}alias {}/.well-known/acme-challenge/;",
                            webroot.display()
                        ));
                    } else if server_level && has_acme && !acme_root_inside && name == "root" {
                        replaced = Some(format!("{indent}root {};", webroot.display()));
                    }
                    webroot_rewritten |= replaced.is_some();
                }
                _ => {}
            }
        }
        out.push_str(replaced.as_deref().unwrap_or(line));
        out.push('\n');
        // Track blocks: a line opening `{` pushes its header; `}` pops.
        for (i, c) in code.char_indices() {
            match c {
                '{' => stack.push(
                    code[..i]
                        .trim()
                        .rsplit(['{', '}', ';'])
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_string(),
                ),
                '}' => {
                    stack.pop();
                }
                _ => {}
            }
        }
    }
    if ports.is_empty() {
        return Err("the config has no IPv4 `listen` directive".into());
    }
    // Never let a listen that the rewrite missed bind a public port.
    for line in out.lines() {
        let code = strip_comment(line).trim();
        if code.starts_with("listen") && !code.starts_with("listen 127.0.0.1:") {
            return Err(format!(
                "cannot move `{code}` to loopback: write each `listen` on one line"
            ));
        }
    }
    if has_acme && !webroot_rewritten {
        return Err(
            "no ACME webroot found: expected `root` or `alias` in a location matching \
             acme-challenge (or a server-level `root`)"
                .into(),
        );
    }
    Ok((out, ports))
}

pub(super) fn acme_location_has_root(conf: &str) -> bool {
    let mut depth_in_acme: Option<usize> = None;
    let mut depth = 0usize;
    for line in conf.lines() {
        let code = strip_comment(line);
        if depth_in_acme.is_some() {
            if let Some((_, name, _)) = directive(line) {
                if name == "root" || name == "alias" {
                    return true;
                }
            }
        }
        for c in code.chars() {
            match c {
                '{' => {
                    depth += 1;
                    if depth_in_acme.is_none()
                        && code.contains("location")
                        && code.contains("acme-challenge")
                    {
                        depth_in_acme = Some(depth);
                    }
                }
                '}' => {
                    if depth_in_acme == Some(depth) {
                        depth_in_acme = None;
                    }
                    depth = depth.saturating_sub(1);
                }
                _ => {}
            }
        }
    }
    false
}

/// Starts Debian's nginx with the rendered site config on 127.0.0.1 (see [`rewrite_for_live`]
/// for what is rewritten; TLS files as in [`nginx_t`]) in front of an in-process HTTP/1.1
/// upstream that answers 200 with the request head it received as the body, and header
/// `X-Bookstore-Instance: validators-test-upstream`. Returns once both ports accept connections.
pub fn nginx_live(conf: &Path, domain: &str) -> Result<NginxLive, String> {
    // nginx binds the ports found free itself: when something took one in between, new ports.
    let mut taken = 0;
    loop {
        match nginx_live_once(conf, domain) {
            Err(e) if e.contains("Address already in use") && taken < 4 => taken += 1,
            other => return other,
        }
    }
}

pub(super) fn nginx_live_once(conf: &Path, domain: &str) -> Result<NginxLive, String> {
    let upstream = Upstream::start()?;
    let dir = tempdir("nginx")?;
    let webroot = dir.path().join("webroot");
    let (site, ports) = rewrite_for_live(&read(conf)?, upstream.port, &webroot)?;
    let prefix = prefix_with(dir, &site, domain)?;
    write(
        &webroot.join(".well-known/acme-challenge").join(ACME_TOKEN),
        ACME_TOKEN_CONTENT,
    )?;
    let stderr = fs::File::create(prefix.dir.path().join("logs/stderr.log"))
        .map_err(|e| format!("cannot create the nginx stderr log: {e}"))?;
    let child = nginx_cmd(&prefix)?
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start nginx: {e}"))?;
    let live = NginxLive {
        domain: domain.to_string(),
        http_port: ports
            .get(&80)
            .or_else(|| ports.values().next())
            .copied()
            .unwrap_or(0),
        https_port: ports.get(&443).copied().unwrap_or(0),
        ports,
        webroot,
        upstream,
        child,
        prefix,
    };
    wait_until_listening(live)
}

pub(super) fn wait_until_listening(mut live: NginxLive) -> Result<NginxLive, String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(status)) = live.child.try_wait() {
            let stderr = fs::read_to_string(live.prefix.dir.path().join("logs/stderr.log"))
                .unwrap_or_default();
            return Err(format!(
                "nginx exited ({status}) before serving\n--- stderr ---\n{stderr}\n--- error.log ---\n{}\n--- site config as run ---\n{}",
                live.error_log(),
                live.effective_config()
            ));
        }
        let up = live
            .ports
            .values()
            .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok());
        if up {
            return Ok(live);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "nginx did not listen on {:?} within 15 s\n--- error.log ---\n{}",
                live.ports,
                live.error_log()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
