//! Secrets from files or the environment, kept out of logs and `Debug` output.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A secret value; prints as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads the secret from `file` when given, else from the variable `env`.
    /// A trailing newline in a file is dropped; an empty secret is missing.
    pub fn load(what: &str, env: &str, flag: &str, file: Option<&Path>) -> Result<Secret> {
        let value = match file {
            Some(f) => std::fs::read_to_string(f).map_err(|e| Error::MissingSecret {
                what: format!("{what}: cannot read {flag} {}: {e}", f.display()),
            })?,
            None => std::env::var(env).unwrap_or_default(),
        };
        let value = value.strip_suffix('\n').unwrap_or(&value);
        let value = value.strip_suffix('\r').unwrap_or(value);
        if value.is_empty() {
            let source = match file {
                Some(f) => format!("{flag} {} is empty", f.display()),
                None => format!("set {env} or {flag}"),
            };
            return Err(Error::MissingSecret {
                what: format!("{what}: {source}"),
            });
        }
        Ok(Secret(value.to_owned()))
    }

    /// Compares in time that does not depend on where the values differ.
    pub fn matches(&self, candidate: &str) -> bool {
        use subtle::ConstantTimeEq;
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        a.len() == b.len() && bool::from(a.ct_eq(b))
    }
}

/// Where a secret comes from: a file, read again on demand so that a Secret
/// rotated in place (the kubelet swaps a mounted Secret's files) is seen, or
/// a variable, which never changes.
#[derive(Debug, Clone)]
pub struct SecretSource {
    pub what: &'static str,
    pub env: &'static str,
    pub flag: &'static str,
    pub file: Option<PathBuf>,
}

impl SecretSource {
    pub fn load(&self) -> Result<Secret> {
        Secret::load(self.what, self.env, self.flag, self.file.as_deref())
    }

    /// The value before the last rotation, where one is kept: the file
    /// `<name>-previous` beside the secret's file (the chart writes it when
    /// a password changes), read for a server that was not running while
    /// the change went round.
    pub fn previous(&self) -> Option<Secret> {
        let file = self.file.as_ref()?;
        let mut name = file.file_name()?.to_os_string();
        name.push("-previous");
        Secret::load(
            self.what,
            self.env,
            self.flag,
            Some(&file.with_file_name(name)),
        )
        .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "***");
    }

    #[test]
    fn from_file_drops_newline() {
        let p = std::env::temp_dir().join(format!("mysql-sts-secret-{}", std::process::id()));
        std::fs::write(&p, "s3cret\n").unwrap();
        let s = Secret::load("x", "MYSQL_STS_TEST_UNSET", "--x-file", Some(&p)).unwrap();
        assert_eq!(s.expose(), "s3cret");
        std::fs::write(&p, "\n").unwrap();
        let e = Secret::load("the x", "MYSQL_STS_TEST_UNSET", "--x-file", Some(&p)).unwrap_err();
        assert!(e.to_string().contains("is empty"), "{e}");
        std::fs::remove_file(&p).unwrap();
        let e = Secret::load("the x", "MYSQL_STS_TEST_UNSET", "--x-file", Some(&p)).unwrap_err();
        assert!(e.to_string().contains("cannot read --x-file"), "{e}");
        assert_eq!(e.exit_code(), crate::error::exit::CONFIG);
    }

    #[test]
    fn a_source_reads_its_file_again_and_the_previous_value_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("root-password");
        let src = SecretSource {
            what: "the root password",
            env: "MYSQL_STS_TEST_UNSET",
            flag: "--root-password-file",
            file: Some(file.clone()),
        };
        std::fs::write(&file, "one\n").unwrap();
        assert_eq!(src.load().unwrap().expose(), "one");
        assert_eq!(src.previous(), None);
        std::fs::write(&file, "two").unwrap();
        std::fs::write(dir.path().join("root-password-previous"), "one\n").unwrap();
        assert_eq!(src.load().unwrap().expose(), "two");
        assert_eq!(src.previous().unwrap().expose(), "one");
        let env_only = SecretSource { file: None, ..src };
        assert_eq!(env_only.previous(), None);
    }

    #[test]
    fn missing_env_names_both_sources() {
        let e =
            Secret::load("the token", "MYSQL_STS_TEST_UNSET_2", "--token-file", None).unwrap_err();
        assert!(e.to_string().contains("MYSQL_STS_TEST_UNSET_2"), "{e}");
        assert!(e.to_string().contains("--token-file"), "{e}");
    }

    #[test]
    fn matching() {
        let s = Secret::new("abc");
        assert!(s.matches("abc"));
        assert!(!s.matches("abd"));
        assert!(!s.matches("ab"));
        assert!(!s.matches(""));
    }
}
