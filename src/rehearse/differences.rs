//! The substitutions a rehearsal makes to the rendered files: each is printed, so that every
//! difference from the real platform is said.

/// One substitution the rehearsal makes to a rendered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// What is substituted (a variable, a directive).
    pub what: String,
    /// As rendered, for AWS.
    pub on_aws: String,
    /// In the rehearsal.
    pub here: String,
}

/// The substitutions, each listed once.
#[derive(Debug, Clone, Default)]
pub struct Differences(pub Vec<Difference>);

impl Differences {
    /// Adds a substitution unless the same `what` and `on_aws` is already listed.
    pub fn add(
        &mut self,
        what: impl Into<String>,
        on_aws: impl Into<String>,
        here: impl Into<String>,
    ) {
        let what = what.into();
        let on_aws = on_aws.into();
        if !self.0.iter().any(|d| d.what == what && d.on_aws == on_aws) {
            self.0.push(Difference {
                what,
                on_aws,
                here: here.into(),
            });
        }
    }

    /// The printed list: "differences from AWS: ...".
    pub fn render(&self) -> String {
        self.render_from("AWS")
    }

    /// The printed list: "differences from `platform`: ...".
    pub fn render_from(&self, platform: &str) -> String {
        let mut s = format!("differences from {platform} (everything else runs as rendered):\n");
        for d in &self.0 {
            s.push_str(&format!("  - {}: {} -> {}\n", d.what, d.on_aws, d.here));
        }
        s
    }
}
