//! The commands the rendered certificate scripts call that a rehearsal cannot run as on the VM,
//! as small shell scripts put first on the scripts' PATH: IMDS (through `curl`), systemd
//! (`systemctl`), the system resolver (`getent`), and the real `nginx` and `certbot` pointed at
//! the rehearsal's directories. Each is listed as a difference.

use crate::rehearse::supervise::find_tool;
use crate::rehearse::Differences;
use anyhow::{anyhow, Result};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Where the stand-ins act.
#[derive(Debug, Clone)]
pub struct Targets {
    /// The directory the stand-ins are written to (first on PATH).
    pub dir: PathBuf,
    /// The instance's public IPv4 address, as IMDS would give it.
    pub public_ip: Ipv4Addr,
    /// The DNS server (pebble-challtestsrv) on 127.0.0.1.
    pub dns_port: u16,
    /// The rehearsal's nginx: its prefix, main config and pid file.
    pub nginx_prefix: PathBuf,
    /// The rehearsal's `/etc/letsencrypt`, `/var/lib/letsencrypt` and `/var/log/letsencrypt`.
    pub certbot_dirs: [PathBuf; 3],
    /// The CA bundle certbot trusts for the ACME server's own HTTPS.
    pub acme_ca: PathBuf,
    /// Written by `systemctl disable --now bookstore-certificate.timer`.
    pub timer_disabled: PathBuf,
    /// Gets a line for every `systemctl reload nginx`.
    pub reloads: PathBuf,
}

/// The installed tool's path, shell-quoted.
fn tool(name: &str, package: &str) -> Result<String> {
    find_tool(name)
        .map(|p| q(&p))
        .ok_or_else(|| anyhow!("{name} is not installed (Debian package {package})"))
}

fn q(p: &Path) -> String {
    crate::render::shell_quote(&p.display().to_string())
}

/// Writes the stand-ins into `t.dir` and lists each in `diffs`.
pub fn install(t: &Targets, diffs: &mut Differences) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(&t.dir)?;
    let header = "#!/bin/sh\n# bookstore rehearse: a stand-in on the rendered scripts' PATH (see the printed differences).\n";
    let curl = tool("curl", "curl")?;
    let dig = tool("dig", "bind9-dnsutils")?;
    let getent = tool("getent", "libc-bin")?;
    let nginx = tool("nginx", "nginx")?;
    let certbot = tool("certbot", "certbot")?;
    let token = "rehearsal-imds-token";
    let scripts = [
        (
            "curl",
            format!(
                r#"# IMDSv2 (169.254.169.254 is not reachable here): the token, then public-ipv4 with it.
# Loopback URLs go to the real curl; any other address is refused.
token=no
for a in "$@"; do
    case "$a" in
        'X-aws-ec2-metadata-token: {token}') token=yes ;;
    esac
done
for a in "$@"; do
    case "$a" in
        http://169.254.169.254/latest/api/token) echo '{token}'; exit 0 ;;
        http://169.254.169.254/latest/meta-data/public-ipv4)
            [ "$token" = yes ] || {{ echo 'curl: (22) The requested URL returned error: 401' >&2; exit 22; }}
            echo '{ip}'; exit 0 ;;
        http://169.254.169.254/*) echo 'curl: (22) The requested URL returned error: 404' >&2; exit 22 ;;
        http://127.*|https://127.*|http://localhost[:/]*|https://localhost[:/]*) exec {curl} "$@" ;;
        http://*|https://*) echo "bookstore rehearse: the curl stand-in reaches only IMDS and loopback, not $a" >&2; exit 7 ;;
    esac
done
exec {curl} "$@"
"#,
                ip = t.public_ip,
            ),
            "the instance metadata service (IMDSv2) at 169.254.169.254".to_string(),
            format!(
                "a `curl` stand-in answers IMDS (public-ipv4 = {}); loopback URLs go to the real curl",
                t.public_ip
            ),
        ),
        (
            "getent",
            format!(
                r#"# `getent ahostsv4 NAME` asks pebble-challtestsrv, the DNS server pebble validates with.
if [ "${{1:-}}" != ahostsv4 ] || [ $# -ne 2 ]; then
    exec {getent} "$@"
fi
found=$({dig} +short +time=2 +tries=2 -p {port} @127.0.0.1 A "$2" | grep -E '^[0-9.]+$')
[ -n "$found" ] || exit 2
for ip in $found; do
    printf '%-15s STREAM %s\n%-15s DGRAM\n%-15s RAW\n' "$ip" "$2" "$ip" "$ip"
done
"#,
                port = t.dns_port
            ),
            "`getent ahostsv4` asks the VPC's resolver (public DNS)".to_string(),
            format!(
                "a `getent` stand-in asks pebble-challtestsrv on 127.0.0.1:{} with dig",
                t.dns_port
            ),
        ),
        (
            "systemctl",
            format!(
                r#"# systemd's part in the certificate flow; anything else is refused.
case "$*" in
    'reload nginx') kill -HUP "$(cat {pid})" && echo reload >>{reloads}; exit ;;
    'disable --now bookstore-certificate.timer') exec touch {off} ;;
esac
echo "bookstore rehearse: the systemctl stand-in does not do \`systemctl $*\`" >&2
exit 1
"#,
                pid = q(&t.nginx_prefix.join("nginx.pid")),
                off = q(&t.timer_disabled),
                reloads = q(&t.reloads),
            ),
            "systemd: `systemctl reload nginx`, `systemctl disable --now bookstore-certificate.timer`".to_string(),
            "a `systemctl` stand-in: SIGHUP to the rehearsal's nginx master; the rehearsal's retry timer stops".to_string(),
        ),
        (
            "nginx",
            format!(
                "exec {nginx} -p {p} -c {c} \"$@\"\n",
                p = q(&t.nginx_prefix),
                c = q(&t.nginx_prefix.join("nginx.conf")),
            ),
            "`nginx` with Debian's /etc/nginx/nginx.conf".to_string(),
            format!(
                "`nginx -p {} -c {}` (the rehearsal's main config, which includes sites-enabled/bookstore.conf)",
                t.nginx_prefix.display(),
                t.nginx_prefix.join("nginx.conf").display()
            ),
        ),
        (
            "certbot",
            format!(
                "REQUESTS_CA_BUNDLE={ca}\nexport REQUESTS_CA_BUNDLE\nexec {certbot} --config-dir {c} --work-dir {w} --logs-dir {l} \"$@\"\n",
                ca = q(&t.acme_ca),
                c = q(&t.certbot_dirs[0]),
                w = q(&t.certbot_dirs[1]),
                l = q(&t.certbot_dirs[2]),
            ),
            "`certbot` in /etc/letsencrypt, /var/lib/letsencrypt, /var/log/letsencrypt, trusting the system's CAs".to_string(),
            format!(
                "`certbot --config-dir {} --work-dir {} --logs-dir {}` with REQUESTS_CA_BUNDLE={} (pebble's HTTPS has its own CA)",
                t.certbot_dirs[0].display(),
                t.certbot_dirs[1].display(),
                t.certbot_dirs[2].display(),
                t.acme_ca.display()
            ),
        ),
    ];
    for (name, body, on_aws, here) in scripts {
        let path = t.dir.join(name);
        std::fs::write(&path, format!("{header}{body}"))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        diffs.add(format!("stand-in `{name}`"), on_aws, here);
    }
    Ok(())
}
