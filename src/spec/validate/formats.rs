//! What a value must look like: domains, e-mails, regions, IDs, images, versions, URLs.

/// Parses `1.22` or `1.25.1` into (major, minor, patch).
pub fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    let patch = match it.next() {
        Some(p) => p.parse().ok()?,
        None => 0,
    };
    if it.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}

pub(super) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A fully qualified domain name with at least two labels and an alphabetic top-level label.
pub fn is_domain(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    let labels: Vec<&str> = s.split('.').collect();
    s.len() <= 253
        && labels.len() >= 2
        && labels
            .iter()
            .all(|l| is_dns_label(&l.to_ascii_lowercase()) && l.is_ascii())
        && labels
            .last()
            .is_some_and(|t| t.len() >= 2 && t.chars().all(|c| c.is_ascii_alphabetic()))
}

/// A plain `local@domain` address.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && is_domain(domain)
}

pub(super) fn is_host(s: &str) -> bool {
    s.parse::<std::net::Ipv4Addr>().is_ok() || is_domain(s) || is_dns_label(s)
}

pub(super) fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts
            .iter()
            .take(parts.len() - 1)
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

pub(super) fn is_instance_type(s: &str) -> bool {
    let Some((family, size)) = s.split_once('.') else {
        return false;
    };
    !family.is_empty()
        && !size.is_empty()
        && family
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && size
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

pub(super) fn is_image_repo(s: &str) -> bool {
    !s.is_empty()
        && !s.contains(':')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c))
        && !s.starts_with('/')
        && !s.ends_with('/')
}

pub(super) fn is_tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !s.starts_with(['.', '-'])
}

pub(super) fn is_identifier(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

pub(super) fn looks_secret_name(s: &str) -> bool {
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
    ]
    .iter()
    .any(|w| s.contains(w))
}

pub(super) fn is_abs_path(s: &str) -> bool {
    s.starts_with('/')
        && s.len() > 1
        && !s.contains(char::is_whitespace)
        && !s.split('/').any(|p| p == "..")
}

pub(super) fn is_aws_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|h| {
        (8..=17).contains(&h.len())
            && h.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    })
}

/// `arn:aws:acm:REGION:ACCOUNT:certificate/ID` (any partition).
pub(super) fn is_acm_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "acm"
        && is_region(parts[3])
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5].strip_prefix("certificate/").is_some_and(|id| {
            !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// `ssm:/name/with/slashes`: an SSM Parameter Store reference.
pub fn is_ssm_ref(s: &str) -> bool {
    s.strip_prefix("ssm:/").is_some_and(|rest| {
        !rest.is_empty()
            && rest.len() <= 1000
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
            && !rest.ends_with('/')
            && !rest.contains("//")
    })
}

/// Why `s` cannot be an ACME directory URL (`https://host[:port]/path`), or `None` when it can.
/// The URL is rendered inside single quotes in a shell script, and must not carry credentials.
pub(super) fn acme_url_problem(s: &str) -> Option<String> {
    if !s.starts_with("https://") {
        return Some("ACME servers are reached over https:// only (RFC 8555)".into());
    }
    web_url_problem(s)
}

/// Why `s` cannot be an `http://` or `https://` URL (`scheme://host[:port]/path`) without
/// credentials, or `None` when it can.
pub(super) fn web_url_problem(s: &str) -> Option<String> {
    let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    else {
        return Some("it must start with http:// or https://".into());
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Some("a user name or password does not belong in the URL".into());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((ip, after)) if ip.parse::<std::net::Ipv6Addr>().is_ok() => {
                (ip, after.strip_prefix(':'))
            }
            _ => return Some("the bracketed IPv6 address does not parse".into()),
        },
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let lower = host.to_ascii_lowercase();
    let host_ok = authority.starts_with('[')
        || is_domain(host)
        || is_dns_label(&lower)
        || host.parse::<std::net::Ipv4Addr>().is_ok();
    if !host_ok {
        return Some(format!("`{host}` is not a host name or IP address"));
    }
    if let Some(p) = port {
        if !p.parse::<u16>().is_ok_and(|p| p != 0) {
            return Some(format!("`{p}` is not a port (1 to 65535)"));
        }
    }
    if let Some(bad) = tail
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._~:/?[]@!$&()*+,;=%".contains(*c)))
    {
        return Some(format!("{bad:?} is not allowed in its path"));
    }
    None
}

/// A Kubernetes quantity (`250m`, `0.5`, `128Mi`, `1G`) as a plain number.
pub(super) fn parse_quantity(s: &str) -> Option<f64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("m", 0.001),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (num, factor) = SUFFIXES
        .iter()
        .find_map(|(suffix, f)| s.strip_suffix(suffix).map(|n| (n, *f)))
        .unwrap_or((s, 1.0));
    if num.is_empty()
        || !num.chars().all(|c| c.is_ascii_digit() || c == '.')
        || num.matches('.').count() > 1
    {
        return None;
    }
    num.parse::<f64>().ok().map(|v| v * factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::validate::check;
    use crate::spec::Spec;

    #[test]
    fn acme_directory_urls() {
        for ok in [
            "https://acme-v02.api.letsencrypt.org/directory",
            "https://127.0.0.1:14000/dir",
            "https://[::1]:14000/dir",
            "https://ca.internal:9000/acme/acme/directory",
            "https://localhost/dir",
        ] {
            assert_eq!(acme_url_problem(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("http://acme.example.com/dir", "https:// only"),
            ("https://user:pw@acme.example.com/dir", "password"),
            ("https://acme.example.com/dir'; reboot; '", "is not allowed"),
            ("https://acme.example.com:0/dir", "not a port"),
            ("https://acme example.com/dir", "not a host name"),
            ("https://[::1/dir", "IPv6"),
        ] {
            let got = acme_url_problem(bad).unwrap_or_default();
            assert!(got.contains(why), "{bad}: {got}");
        }
        let mut spec = Spec::default();
        spec.domain.acme_server = Some("https://ca.internal/acme/directory".into());
        assert!(check(&spec).is_empty());
        spec.domain.letsencrypt_staging = true;
        let problems = check(&spec);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "domain.acme_server");
        assert!(problems[0].message.contains("keep only one"));
        spec.domain.acme_server = Some("http://ca.internal/dir".into());
        assert!(check(&spec)[0].message.contains("https:// only"));
    }

    #[test]
    fn syntax_helpers() {
        assert!(is_domain("shop.example.com"));
        assert!(!is_domain("shop"));
        assert!(!is_domain("-bad.example.com"));
        assert!(!is_domain("shop.example.c0m"));
        assert!(is_email("ops@example.com"));
        assert!(!is_email("ops@@example.com"));
        assert!(!is_email("opsexample.com"));
        assert!(is_ssm_ref("ssm:/bookstore/db"));
        assert!(!is_ssm_ref("hunter2"));
        assert!(!is_ssm_ref("ssm:/"));
        assert_eq!(parse_version("1.25.1"), Some((1, 25, 1)));
        assert_eq!(parse_version("1.x"), None);
        assert!(is_region("eu-west-3"));
        assert!(is_region("us-gov-west-1"));
        assert!(!is_region("mars"));
    }
}
