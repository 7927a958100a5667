//! [`Environment`]: where the sudo variables are read from.

use std::collections::HashMap;
use std::fmt;

/// Reads environment variables, the counterpart of the Go package's
/// `Environment` interface (`LookupEnv`, `Getenv`).
///
/// Acquisition reads `SUDO_COMMAND`, `SUDO_UID` and `SUDO_GID` through it
/// (see [`Spec::with_environment`](crate::Spec::with_environment)); tests
/// inject a [`FixedEnvironment`] instead of changing the process environment.
pub trait Environment: Send + Sync + fmt::Debug {
    /// The value of `key`, or `None` when it is not set (Go: `LookupEnv`).
    fn lookup(&self, key: &str) -> Option<String>;

    /// The value of `key`, or an empty string when it is not set (Go: `Getenv`).
    fn get(&self, key: &str) -> String {
        self.lookup(key).unwrap_or_default()
    }
}

/// The process environment ([`std::env::var`]); the default of a
/// [`Spec`](crate::Spec). A value that is not valid UTF-8 reads as unset.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsEnvironment;

impl Environment for OsEnvironment {
    fn lookup(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

/// A fixed set of variables, for tests and for callers that decide the sudo
/// ownership themselves.
///
/// ```
/// use machine_mutex::{Environment, FixedEnvironment};
/// let env = FixedEnvironment::new([("SUDO_COMMAND", "/bin/true"), ("SUDO_UID", "1000")]);
/// assert_eq!(env.get("SUDO_UID"), "1000");
/// assert_eq!(env.lookup("SUDO_GID"), None);
/// ```
#[derive(Clone, Debug, Default)]
pub struct FixedEnvironment {
    vars: HashMap<String, String>,
}

impl FixedEnvironment {
    /// An environment holding exactly `vars`.
    pub fn new<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        FixedEnvironment {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

impl Environment for FixedEnvironment {
    fn lookup(&self, key: &str) -> Option<String> {
        self.vars.get(key).cloned()
    }
}

/// The owner that the lock file should get under sudo: `Some((uid, gid))`
/// when `SUDO_COMMAND` is set and non-empty and both ids parse, as in the Go
/// package's `chownFromRoot`.
#[allow(dead_code)] // not used on every platform
pub(crate) fn sudo_owner(env: &dyn Environment) -> Option<(u32, u32)> {
    match env.lookup("SUDO_COMMAND") {
        Some(cmd) if !cmd.is_empty() => {}
        _ => return None,
    }
    let uid = env.get("SUDO_UID").trim().parse().ok()?;
    let gid = env.get("SUDO_GID").trim().parse().ok()?;
    Some((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sudo owner is taken only with a non-empty SUDO_COMMAND and two
    /// numeric ids (Go: `chownFromRoot`).
    #[test]
    fn sudo_owner_rules() {
        let full = [
            ("SUDO_COMMAND", "x"),
            ("SUDO_UID", "12"),
            ("SUDO_GID", "34"),
        ];
        assert_eq!(sudo_owner(&FixedEnvironment::new(full)), Some((12, 34)));
        let empty_cmd = [("SUDO_COMMAND", ""), ("SUDO_UID", "12"), ("SUDO_GID", "34")];
        assert_eq!(sudo_owner(&FixedEnvironment::new(empty_cmd)), None);
        let no_cmd = [("SUDO_UID", "12"), ("SUDO_GID", "34")];
        assert_eq!(sudo_owner(&FixedEnvironment::new(no_cmd)), None);
        let bad_uid = [
            ("SUDO_COMMAND", "x"),
            ("SUDO_UID", "root"),
            ("SUDO_GID", "34"),
        ];
        assert_eq!(sudo_owner(&FixedEnvironment::new(bad_uid)), None);
    }
}
