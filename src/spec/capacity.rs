//! Database connections at full scale: the pool each objective 2 instance gets, and the check
//! that `max_size` instances × that pool fit in the RDS class's `max_connections`.
//!
//! RDS for MySQL sets `max_connections` to `{DBInstanceClassMemory/12582880}` by default
//! (the default parameter group of MySQL 8.0 and 8.4, as documented in December 2026).
//! `DBInstanceClassMemory` is the class's memory less what the OS and RDS's own processes
//! take; AWS does not publish it per class, so [`max_connections`] assumes 75 % of the nominal
//! memory, which errs low: a `db.t4g.micro` (1 GiB) reports 66, the estimate is 64.

use super::Spec;

/// The divisor of RDS's default `max_connections` formula.
pub const BYTES_PER_CONNECTION: u64 = 12_582_880;
/// The share of nominal memory assumed to be `DBInstanceClassMemory`.
pub const MEMORY_SHARE_PERCENT: u64 = 75;
/// Connections kept free for RDS's own (`rdsadmin`), an operator's shell and migrations.
pub const RESERVED_CONNECTIONS: u32 = 10;
/// The shop's own default pool, used when the class leaves room for it.
pub const DEFAULT_POOL: u32 = 16;
/// Below this an instance cannot serve concurrent requests and `/readyz` at once.
pub const MIN_POOL: u32 = 4;

/// Nominal memory of an RDS class in GiB, from its family and size (December 2026):
/// burstable `t3`/`t4g`, general purpose `m5`..`m8g` and memory optimised `r5`..`r8g`.
pub fn memory_gib(class: &str) -> Option<u64> {
    let (family, size) = class.strip_prefix("db.")?.split_once('.')?;
    let per_vcpu_of_large = match family.chars().next()? {
        't' if matches!(family, "t3" | "t4g") => {
            return match size {
                "micro" => Some(1),
                "small" => Some(2),
                "medium" => Some(4),
                "large" => Some(8),
                "xlarge" => Some(16),
                "2xlarge" => Some(32),
                _ => None,
            }
        }
        'm' if family.len() <= 3
            && family[1..2]
                .parse::<u8>()
                .is_ok_and(|g| (5..=8).contains(&g)) =>
        {
            8
        }
        'r' if family.len() <= 3
            && family[1..2]
                .parse::<u8>()
                .is_ok_and(|g| (5..=8).contains(&g)) =>
        {
            16
        }
        _ => return None,
    };
    let factor: u64 = match size {
        "large" => 1,
        "xlarge" => 2,
        s => s.strip_suffix("xlarge")?.parse::<u64>().ok()? * 2,
    };
    Some(per_vcpu_of_large * factor)
}

/// The estimated default `max_connections` of an RDS MySQL class.
pub fn max_connections(class: &str) -> Option<u32> {
    let bytes = memory_gib(class)? * 1024 * 1024 * 1024 * MEMORY_SHARE_PERCENT / 100;
    Some((bytes / BYTES_PER_CONNECTION) as u32)
}

/// The pool per objective 2 instance: the shop's default, or less so that `max_size` instances
/// fit in the class's connections (never below [`MIN_POOL`]; [`check`] refuses that case).
pub fn pool_per_instance(spec: &Spec) -> u32 {
    match max_connections(&spec.database.instance_class) {
        None => DEFAULT_POOL,
        Some(max) => {
            let share = max.saturating_sub(RESERVED_CONNECTIONS) / spec.objective2.max_size.max(1);
            share.clamp(MIN_POOL, DEFAULT_POOL)
        }
    }
}

/// The problem with the spec's database capacity, as (key path, message), if any.
pub fn check(spec: &Spec) -> Option<(&'static str, String)> {
    let class = &spec.database.instance_class;
    let instances = spec.objective2.max_size;
    let Some(max) = max_connections(class) else {
        return Some((
            "database.instance_class",
            format!(
                "`{class}` is not in bookstore's table of RDS classes (t3/t4g micro..2xlarge, m5..m8g and r5..r8g \
                 large..24xlarge), so the connection pool cannot be sized against its max_connections; use one of those"
            ),
        ));
    };
    let pool = pool_per_instance(spec);
    let usable = max.saturating_sub(RESERVED_CONNECTIONS);
    if instances * pool > usable {
        return Some((
            "objective2.max_size",
            format!(
                "{instances} instances × a pool of {pool} connections = {} connections, but `{class}` allows about {max} \
                 (max_connections = DBInstanceClassMemory/{BYTES_PER_CONNECTION}, estimated at {MEMORY_SHARE_PERCENT} % of \
                 {} GiB) less {RESERVED_CONNECTIONS} kept free = {usable}; lower objective2.max_size to {} or choose a \
                 larger database.instance_class",
                instances * pool,
                memory_gib(class).unwrap_or(0),
                usable / MIN_POOL,
            ),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_follows_the_documented_formula() {
        assert_eq!(memory_gib("db.t4g.micro"), Some(1));
        assert_eq!(memory_gib("db.m7g.2xlarge"), Some(32));
        assert_eq!(memory_gib("db.r6g.large"), Some(16));
        assert_eq!(memory_gib("db.r5.24xlarge"), Some(768));
        assert_eq!(memory_gib("db.x2g.large"), None);
        // 1 GiB × 75 % / 12582880 = 64.0.
        assert_eq!(max_connections("db.t4g.micro"), Some(64));
        assert_eq!(max_connections("db.t4g.small"), Some(128));
    }
}
