//! Checks that need no account: the rendered user-data against EC2's size limit, and reserved
//! example names that Let's Encrypt and DNS refuse. `gen` and `validate` run them too.

use super::{Check, Status};
use crate::blueprints::Objective;
use crate::render::Rendered;
use crate::spec::Spec;

/// EC2's limit on user data, in bytes, before base64 encoding.
pub const USER_DATA_LIMIT: usize = 16 * 1024;
/// Below this much headroom the size is a warning.
pub const USER_DATA_HEADROOM: usize = 1024;

/// The size of each rendered `user-data.yaml` (objectives 1 and 2) against [`USER_DATA_LIMIT`].
pub fn user_data(rendered: &[Rendered]) -> Vec<Check> {
    rendered
        .iter()
        .filter(|r| matches!(r.objective, Objective::Objective1 | Objective::Objective2))
        .filter_map(|r| {
            let file = r.files.iter().find(|f| f.path == "user-data.yaml")?;
            let size = file.content.len();
            let pct = size * 100 / USER_DATA_LIMIT;
            let name = format!("{} user-data size", r.objective.name());
            let reason = format!(
                "user-data.yaml is {size} bytes of EC2's {USER_DATA_LIMIT}-byte limit ({pct}%)"
            );
            Some(if size > USER_DATA_LIMIT {
                Check::new(name, Status::Fail, format!(
                    "{reason}; EC2 refuses the launch. Shorten `app.env` or other values that the user-data carries, by {} bytes at least",
                    size - USER_DATA_LIMIT
                ))
            } else if size + USER_DATA_HEADROOM > USER_DATA_LIMIT {
                Check::new(name, Status::Warn, format!(
                    "{reason}; less than {USER_DATA_HEADROOM} bytes are left for `app.env` and longer values"
                ))
            } else {
                Check::new(name, Status::Ok, reason)
            })
        })
        .collect()
}

/// The largest template `aws cloudformation deploy` sends inline; a larger one needs
/// `--s3-bucket` (the CLI uploads it there first).
pub const INLINE_TEMPLATE_LIMIT: usize = 51_200;

/// The size of each rendered `cloudformation.yaml` against [`INLINE_TEMPLATE_LIMIT`]: over it,
/// the printed deploy command needs `--s3-bucket BUCKET` (a warning, not an error: the template
/// itself is fine, CloudFormation takes up to 1 MB from S3).
pub fn template_size(spec: &Spec, rendered: &[Rendered]) -> Vec<Check> {
    rendered
        .iter()
        .filter_map(|r| {
            let file = r.files.iter().find(|f| f.path == "cloudformation.yaml")?;
            let size = file.content.len();
            let name = format!("{} template size", r.objective.name());
            Some(if size > INLINE_TEMPLATE_LIMIT {
                Check::new(name, Status::Warn, format!(
                    "cloudformation.yaml is {size} bytes, over the {INLINE_TEMPLATE_LIMIT} bytes `aws cloudformation deploy` sends inline: add `--s3-bucket BUCKET` (a bucket of yours in {}) to the deploy command",
                    spec.project.region
                ))
            } else {
                Check::new(name, Status::Ok, format!(
                    "cloudformation.yaml is {size} bytes, within the {INLINE_TEMPLATE_LIMIT} bytes `aws cloudformation deploy` sends inline"
                ))
            })
        })
        .collect()
}

/// Whether `host` is a reserved example or test name (RFC 2606, RFC 6761).
pub fn is_reserved_domain(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let under = |zone: &str| host == zone || host.ends_with(&format!(".{zone}"));
    [
        "example.com",
        "example.net",
        "example.org",
        "example",
        "test",
        "invalid",
        "localhost",
    ]
    .iter()
    .any(|z| under(z))
}

/// `domain.name` and `domain.letsencrypt_email` must not be reserved example names for a real
/// deploy: Let's Encrypt refuses the account e-mail and cannot validate the domain.
pub fn reserved_examples(spec: &Spec) -> Vec<Check> {
    let d = &spec.domain;
    let mut out = Vec::new();
    let email_domain = d.letsencrypt_email.rsplit('@').next().unwrap_or("");
    out.push(if is_reserved_domain(email_domain) {
        Check::new("domain.letsencrypt_email", Status::Fail, format!(
            "`{}` is at a reserved example domain; Let's Encrypt refuses to register it (\"contact email has forbidden domain\"). Set an address you read, e.g. `--set domain.letsencrypt_email=ops@yourcompany.com`",
            d.letsencrypt_email
        ))
    } else {
        Check::new("domain.letsencrypt_email", Status::Ok, format!("`{}` is not a reserved example address", d.letsencrypt_email))
    });
    out.push(if is_reserved_domain(&d.name) {
        Check::new("domain.name", Status::Fail, format!(
            "`{}` is a reserved example name; nobody can point its DNS at the shop, so no certificate can be issued. Set your own domain in `domain.name`",
            d.name
        ))
    } else {
        Check::new("domain.name", Status::Ok, format!("`{}` is not a reserved example name", d.name))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::is_reserved_domain;

    #[test]
    fn reserved_names() {
        for host in [
            "example.com",
            "shop.example.com",
            "EXAMPLE.org.",
            "a.test",
            "x.invalid",
            "example",
        ] {
            assert!(is_reserved_domain(host), "{host}");
        }
        for host in [
            "example.co.uk",
            "myexample.com",
            "shop.examples.com",
            "bookstore.dev",
        ] {
            assert!(!is_reserved_domain(host), "{host}");
        }
    }
}
