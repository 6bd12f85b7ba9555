//! Debian's nginx on 127.0.0.1 in a throwaway prefix, in front of shop instances on loopback.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, require, running_as_root, self_signed};

/// Debian's nginx on 127.0.0.1 in a throwaway prefix, balancing `upstreams`.
pub struct Nginx {
    /// The port nginx listens on.
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx; with `tls`, HTTPS with a fresh self-signed certificate. nginx binds its port
    /// itself: when something took the port in the instant between, it tries another.
    pub fn start(upstreams: &[u16], tls: bool) -> Nginx {
        let nginx = require("nginx", "nginx");
        for _attempt in 0..5 {
            match Nginx::spawn(&nginx, free_port(), upstreams, tls) {
                Ok(n) => return n,
                Err(log) if log.contains("Address already in use") => {
                    eprintln!("nginx: its port was taken, trying another:\n{log}");
                }
                Err(log) => panic!("nginx exited {log}"),
            }
        }
        panic!("nginx: five ports in a row were taken");
    }

    /// Runs nginx on `port` in a fresh prefix until it listens; if it exits, its status and log.
    fn spawn(nginx: &Path, port: u16, upstreams: &[u16], tls: bool) -> Result<Nginx, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        for sub in ["logs", "tmp"] {
            std::fs::create_dir_all(p.join(sub)).expect("mkdir");
        }
        let listen = if tls {
            self_signed(p);
            format!(
                "listen 127.0.0.1:{port} ssl;\n        ssl_certificate {0}/cert.pem;\n        ssl_certificate_key {0}/key.pem;",
                p.display()
            )
        } else {
            format!("listen 127.0.0.1:{port};")
        };
        let servers: String = upstreams
            .iter()
            .map(|u| format!("        server 127.0.0.1:{u} max_fails=1 fail_timeout=1s;\n"))
            .collect();
        let user = if running_as_root() {
            "user root;\n"
        } else {
            ""
        };
        let d = p.display();
        let conf = format!(
            "{user}worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n    access_log off;\n\
             client_body_temp_path {d}/tmp/body;\n    proxy_temp_path {d}/tmp/proxy;\n\
             fastcgi_temp_path {d}/tmp/fastcgi;\n    uwsgi_temp_path {d}/tmp/uwsgi;\n    scgi_temp_path {d}/tmp/scgi;\n\
             upstream shop {{\n{servers}        keepalive 16;\n    }}\n\
             server {{\n        {listen}\n        client_max_body_size 4m;\n\
             location / {{\n            proxy_pass http://shop;\n            proxy_http_version 1.1;\n\
             proxy_set_header Connection \"\";\n            proxy_set_header Host $host;\n\
             proxy_set_header X-Forwarded-For $remote_addr;\n\
             proxy_next_upstream error timeout http_502 http_503;\n            proxy_connect_timeout 1s;\n        }}\n    }}\n}}\n"
        );
        std::fs::write(p.join("nginx.conf"), conf).expect("write nginx.conf");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(p)
            .arg("-c")
            .arg(p.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut n = Nginx { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = n.child.try_wait() {
                return Err(format!("({status}):\n{}", n.error_log()));
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(n);
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen within 15 s:\n{}",
                n.error_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// nginx's error log.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    /// SIGTERM to the master, which takes its worker down with it (SIGKILL would orphan the
    /// worker), then SIGKILL only if it has not exited within 10 s.
    fn drop(&mut self) {
        // Already reaped (its PID may be another process's by now): nothing to stop.
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signalling our own child process by its id.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
