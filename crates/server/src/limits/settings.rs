//! What the abuse defences are configured with: the `CODEGATE_RATE_LIMIT*`,
//! `CODEGATE_TRUSTED_PROXIES`, `CODEGATE_REDIS_*` and timeout variables.

use anyhow::{bail, Context};
use ipnet::IpNet;
use std::net::IpAddr;
use std::time::Duration;

/// Endpoint categories; each has its own limit (DESIGN §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Category {
    /// verify, reactivate — per credential.
    Redemption,
    /// Every GET under /api/v1 — per credential.
    Reads,
    /// `CODE_NOT_FOUND` answers — per credential and client IP (guessing defence).
    FailedRedemptions,
    /// generate, import, export — per credential.
    Bulk,
    /// Other management writes — per credential.
    Management,
    /// Failed logins — per client IP and per username.
    Login,
    /// Requests refused for a missing or bad credential — per client IP.
    Unauthenticated,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::Redemption,
        Category::Reads,
        Category::FailedRedemptions,
        Category::Bulk,
        Category::Management,
        Category::Login,
        Category::Unauthenticated,
    ];

    /// The policy name sent in `RateLimit` headers and problem bodies.
    pub fn name(self) -> &'static str {
        match self {
            Category::Redemption => "redemption",
            Category::Reads => "reads",
            Category::FailedRedemptions => "failed_redemptions",
            Category::Bulk => "bulk",
            Category::Management => "management",
            Category::Login => "login",
            Category::Unauthenticated => "unauthenticated",
        }
    }

    fn env_suffix(self) -> &'static str {
        match self {
            Category::Redemption => "REDEMPTION",
            Category::Reads => "READS",
            Category::FailedRedemptions => "FAILED_REDEMPTIONS",
            Category::Bulk => "BULK",
            Category::Management => "MANAGEMENT",
            Category::Login => "LOGIN",
            Category::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn default_policy(self) -> Policy {
        let (limit, window_secs) = match self {
            Category::Redemption => (1200, 60),
            Category::Reads => (600, 60),
            Category::FailedRedemptions => (30, 600),
            Category::Bulk => (10, 60),
            Category::Management => (120, 60),
            Category::Login => (10, 900),
            Category::Unauthenticated => (120, 60),
        };
        Policy { limit, window_secs }
    }
}

/// `limit` requests per `window_secs` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub limit: u32,
    pub window_secs: u32,
}

impl Policy {
    /// Parses `<count>/<seconds>`, e.g. `600/60`.
    pub fn parse(text: &str) -> anyhow::Result<Policy> {
        let (count, secs) = text.trim().split_once('/').context("expected <count>/<seconds>, e.g. 600/60")?;
        let limit: u32 = count.trim().parse().context("the count must be a positive integer")?;
        let window_secs: u32 = secs.trim().parse().context("the seconds must be a positive integer")?;
        if limit == 0 || window_secs == 0 {
            bail!("count and seconds must be at least 1");
        }
        Ok(Policy { limit, window_secs })
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    /// `false` with `CODEGATE_RATE_LIMITS=off`: no limits, no headers.
    pub enabled: bool,
    /// Indexed by [`Category::index`].
    pub policies: [Policy; 7],
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so several installations can share one Redis.
    pub redis_prefix: String,
    /// A connection must send its request head within this time.
    pub header_read_timeout: Duration,
    /// A request body may stall this long; it must also keep up an average of
    /// [`MIN_BODY_BYTES_PER_SEC`] after that grace.
    pub body_read_timeout: Duration,
    /// How long SIGTERM waits for in-flight requests.
    pub shutdown_timeout: Duration,
}

/// The slowest body upload that is still served (bytes per second, averaged).
pub const MIN_BODY_BYTES_PER_SEC: u64 = 1024;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            policies: Category::ALL.map(Category::default_policy),
            trusted_proxies: Vec::new(),
            redis_url: None,
            redis_prefix: "codegate".into(),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

impl Settings {
    pub fn policy(&self, category: Category) -> Policy {
        self.policies[category.index()]
    }

    pub fn from_env() -> anyhow::Result<Settings> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `var` (the environment, or a map in tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Settings> {
        let var = |name: &str| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mut s = Settings::default();
        if let Some(v) = var("CODEGATE_RATE_LIMITS") {
            s.enabled = match v.to_ascii_lowercase().as_str() {
                "off" | "false" | "0" | "no" | "disabled" => false,
                "on" | "true" | "1" | "yes" | "enabled" => true,
                other => bail!("CODEGATE_RATE_LIMITS must be 'on' or 'off', not '{other}'"),
            };
        }
        for category in Category::ALL {
            let name = format!("CODEGATE_RATE_LIMIT_{}", category.env_suffix());
            if let Some(v) = var(&name) {
                s.policies[category.index()] = Policy::parse(&v).with_context(|| format!("{name}='{v}'"))?;
            }
        }
        if let Some(v) = var("CODEGATE_TRUSTED_PROXIES") {
            s.trusted_proxies = parse_networks(&v).context("CODEGATE_TRUSTED_PROXIES")?;
        }
        s.redis_url = var("CODEGATE_REDIS_URL");
        if let Some(v) = var("CODEGATE_REDIS_PREFIX") {
            s.redis_prefix = v;
        }
        for (name, field) in [
            ("CODEGATE_HEADER_READ_TIMEOUT", &mut s.header_read_timeout),
            ("CODEGATE_BODY_READ_TIMEOUT", &mut s.body_read_timeout),
            ("CODEGATE_SHUTDOWN_TIMEOUT", &mut s.shutdown_timeout),
        ] {
            if let Some(v) = var(name) {
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0 && s.is_finite())
                    .with_context(|| format!("{name} must be a positive number of seconds, not '{v}'"))?;
                *field = Duration::from_secs_f64(secs);
            }
        }
        Ok(s)
    }
}

/// Comma-separated IP addresses and CIDR networks.
pub fn parse_networks(text: &str) -> anyhow::Result<Vec<IpNet>> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<IpNet>()
                .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
                .with_context(|| format!("'{t}' is neither an IP address nor a CIDR network"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_design() {
        let s = from(&[]).unwrap();
        assert!(s.enabled);
        assert_eq!(s.policy(Category::Redemption), Policy { limit: 1200, window_secs: 60 });
        assert_eq!(s.policy(Category::FailedRedemptions), Policy { limit: 30, window_secs: 600 });
        assert_eq!(s.policy(Category::Login), Policy { limit: 10, window_secs: 900 });
    }

    #[test]
    fn environment_overrides_and_switches_off() {
        let s = from(&[
            ("CODEGATE_RATE_LIMIT_READS", "3/2"),
            ("CODEGATE_RATE_LIMITS", "off"),
            ("CODEGATE_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
        ])
        .unwrap();
        assert!(!s.enabled);
        assert_eq!(s.policy(Category::Reads), Policy { limit: 3, window_secs: 2 });
        assert_eq!(s.trusted_proxies.len(), 2);
        assert!(from(&[("CODEGATE_RATE_LIMIT_BULK", "0/60")]).is_err());
        assert!(from(&[("CODEGATE_RATE_LIMIT_BULK", "ten")]).is_err());
        assert!(from(&[("CODEGATE_TRUSTED_PROXIES", "proxy.local")]).is_err());
    }
}
