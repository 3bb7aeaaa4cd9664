//! Reading the Azure Arc challenge key, and only from where the agent writes it.
//!
//! The Arc agent answers the first token request with `401` and
//! `WWW-Authenticate: Basic realm=<path of a fresh .key file>`. The path comes from the network,
//! so it is not trusted: the file must be a `.key` file of at most 4096 bytes directly inside the
//! platform's token directory, after resolving symlinks and `..`. Anything else is refused before
//! the file is opened. The file opened must be the regular file that was checked (same device and
//! inode), so swapping a symlink in between the checks and the read does not help.

use std::{
    io,
    path::{Component, Path, PathBuf},
};

use tokio::io::AsyncReadExt;

use crate::Secret;

/// The largest key file the agent writes.
pub(crate) const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Why a challenge key could not be read. Never contains the key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyFileError {
    /// The `WWW-Authenticate` header is missing or not `Basic realm=<path>`.
    #[error(
        "the Azure Arc agent answered 401 without a `WWW-Authenticate: Basic realm=<key file path>` challenge"
    )]
    MissingChallenge,
    /// The realm path is relative or contains `..`.
    #[error("the challenge key path {0:?} must be an absolute path without `..`")]
    NotAbsolute(String),
    /// The realm path does not name a `.key` file.
    #[error("the challenge key path {0:?} does not name a .key file")]
    NotKeyFile(String),
    /// The file is not inside the token directory once symlinks are resolved.
    #[error("the challenge key path {path:?} is outside the Azure Arc token directory {dir}")]
    OutsideTokenDir {
        /// The path from the challenge.
        path: String,
        /// The expected directory.
        dir: String,
    },
    /// The file is larger than 4096 bytes.
    #[error("the challenge key file {path:?} is {size} bytes, more than the 4096 bytes a key can be")]
    TooLarge {
        /// The path from the challenge.
        path: String,
        /// Its size.
        size: u64,
    },
    /// The file is not a regular file.
    #[error("the challenge key path {0:?} is not a regular file")]
    NotAFile(String),
    /// The file is not UTF-8 text or could not be used as a header.
    #[error("the challenge key file {0:?} does not hold a printable key")]
    NotText(String),
    /// The file or the token directory could not be read.
    #[error(
        "could not read the challenge key file {path:?}: {source} (reading it needs membership of the \
         `himds` group on Linux, or Administrators on Windows)"
    )]
    Io {
        /// The path from the challenge.
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// The key file path named by a `WWW-Authenticate` value: `Basic realm=<path>`, the scheme
/// case-insensitive, split at the first `=`.
pub(crate) fn realm_path(challenge: Option<&str>) -> Result<String, KeyFileError> {
    let challenge = challenge.ok_or(KeyFileError::MissingChallenge)?;
    let (scheme, path) = challenge.split_once('=').ok_or(KeyFileError::MissingChallenge)?;
    if !scheme.trim().eq_ignore_ascii_case("basic realm") {
        return Err(KeyFileError::MissingChallenge);
    }
    let path = path.trim();
    if path.is_empty() {
        return Err(KeyFileError::MissingChallenge);
    }
    Ok(path.to_owned())
}

/// Reads the key named by `realm` if, and only if, it is a `.key` file of at most 4096 bytes
/// directly inside `token_dir` (both compared after resolving symlinks).
pub(crate) async fn read_key(realm: &str, token_dir: &Path) -> Result<Secret, KeyFileError> {
    let given = Path::new(realm);
    if !given.is_absolute() || given.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(KeyFileError::NotAbsolute(realm.to_owned()));
    }
    if !has_key_extension(given) {
        return Err(KeyFileError::NotKeyFile(realm.to_owned()));
    }
    let io_err = |source| KeyFileError::Io {
        path: realm.to_owned(),
        source,
    };
    let dir = tokio::fs::canonicalize(token_dir).await.map_err(io_err)?;
    let outside = || KeyFileError::OutsideTokenDir {
        path: realm.to_owned(),
        dir: token_dir.display().to_string(),
    };
    // Cheap lexical check first, so a path elsewhere is never even resolved.
    if given.parent().map(|p| lexically_same_dir(p, token_dir, &dir)) != Some(true) {
        return Err(outside());
    }
    let resolved: PathBuf = tokio::fs::canonicalize(given).await.map_err(io_err)?;
    if resolved.parent() != Some(dir.as_path()) {
        return Err(outside());
    }
    if !has_key_extension(&resolved) {
        return Err(KeyFileError::NotKeyFile(realm.to_owned()));
    }
    // `lstat` of the resolved path: a regular file, not a symlink swapped in since.
    let metadata = tokio::fs::symlink_metadata(&resolved).await.map_err(io_err)?;
    if !metadata.is_file() {
        return Err(KeyFileError::NotAFile(realm.to_owned()));
    }
    if metadata.len() > MAX_KEY_FILE_BYTES {
        return Err(KeyFileError::TooLarge {
            path: realm.to_owned(),
            size: metadata.len(),
        });
    }
    let file = tokio::fs::File::open(&resolved).await.map_err(io_err)?;
    // The file opened must be the one just checked (nothing replaced the path in between).
    let opened = file.metadata().await.map_err(io_err)?;
    if !same_file(&metadata, &opened) {
        return Err(outside());
    }
    // Read at most one byte more than allowed, in case the file grew after the size check.
    let mut contents = Vec::with_capacity(metadata.len() as usize);
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut contents)
        .await
        .map_err(io_err)?;
    if contents.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyFileError::TooLarge {
            path: realm.to_owned(),
            size: contents.len() as u64,
        });
    }
    let key = String::from_utf8(contents).map_err(|_| KeyFileError::NotText(realm.to_owned()))?;
    if key.is_empty() || key.bytes().any(|b| b.is_ascii_control()) {
        return Err(KeyFileError::NotText(realm.to_owned()));
    }
    Ok(Secret::new(key))
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.is_file() && b.is_file() && a.len() == b.len()
}

fn has_key_extension(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "key") && path.file_stem().is_some_and(|s| !s.is_empty())
}

/// Whether `parent` (from the challenge) names the token directory, as configured or resolved.
fn lexically_same_dir(parent: &Path, configured: &Path, resolved: &Path) -> bool {
    let strip = |p: &Path| {
        p.components()
            .filter(|c| !matches!(c, Component::CurDir))
            .collect::<PathBuf>()
    };
    let parent = strip(parent);
    parent == strip(configured) || parent == strip(resolved)
}

/// The platform's Azure Arc token directory: `/var/opt/azcmagent/tokens` on Linux,
/// `%ProgramData%\AzureConnectedMachineAgent\Tokens` on Windows; `None` elsewhere.
pub(crate) fn platform_token_dir(env: &crate::Env) -> Option<PathBuf> {
    if cfg!(target_os = "linux") {
        Some(PathBuf::from("/var/opt/azcmagent/tokens"))
    } else if cfg!(windows) {
        env.var("PROGRAMDATA")
            .map(|d| Path::new(&d).join("AzureConnectedMachineAgent").join("Tokens"))
    } else {
        None
    }
}

/// The file whose presence means the Azure Arc agent is installed: `/opt/azcmagent/bin/himds` on
/// Linux, `%ProgramFiles%\AzureConnectedMachineAgent\himds.exe` on Windows.
pub(crate) fn platform_agent_file(env: &crate::Env) -> Option<PathBuf> {
    if cfg!(target_os = "linux") {
        Some(PathBuf::from("/opt/azcmagent/bin/himds"))
    } else if cfg!(windows) {
        env.var("ProgramFiles")
            .map(|d| Path::new(&d).join("AzureConnectedMachineAgent").join("himds.exe"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("tokens");
        std::fs::create_dir(&dir).unwrap();
        (root, dir)
    }

    #[test]
    fn the_challenge_must_be_basic_realm() {
        assert_eq!(
            realm_path(Some("Basic realm=/var/opt/azcmagent/tokens/a.key")).unwrap(),
            "/var/opt/azcmagent/tokens/a.key"
        );
        assert_eq!(realm_path(Some("basic REALM = /t/a.key")).unwrap(), "/t/a.key");
        for bad in [
            None,
            Some("Bearer realm=/t/a.key"),
            Some("Basic /t/a.key"),
            Some("Basic realm="),
        ] {
            assert!(
                matches!(realm_path(bad), Err(KeyFileError::MissingChallenge)),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn reads_a_key_inside_the_directory_verbatim() {
        let (_root, dir) = tokens();
        let path = dir.join("abc.key");
        std::fs::write(&path, "s3cr3t-key").unwrap();
        let key = read_key(path.to_str().unwrap(), &dir).await.unwrap();
        assert_eq!(key.secret(), "s3cr3t-key");
    }

    #[tokio::test]
    async fn refuses_dot_dot_even_when_it_resolves_inside() {
        let (_root, dir) = tokens();
        std::fs::write(dir.join("abc.key"), "k").unwrap();
        let sneaky = format!("{}/../tokens/abc.key", dir.display());
        assert!(matches!(
            read_key(&sneaky, &dir).await,
            Err(KeyFileError::NotAbsolute(_))
        ));
        assert!(matches!(
            read_key("abc.key", &dir).await,
            Err(KeyFileError::NotAbsolute(_))
        ));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn refuses_a_symlink_pointing_out_of_the_directory() {
        let (root, dir) = tokens();
        let outside = root.path().join("elsewhere.key");
        std::fs::write(&outside, "not-for-you").unwrap();
        let link = dir.join("link.key");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let err = read_key(link.to_str().unwrap(), &dir).await.unwrap_err();
        assert!(matches!(err, KeyFileError::OutsideTokenDir { .. }), "{err}");
        assert!(!err.to_string().contains("not-for-you"));
    }

    #[tokio::test]
    async fn refuses_a_key_file_elsewhere_without_touching_it() {
        let (root, dir) = tokens();
        let other = root.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("a.key"), "k").unwrap();
        let err = read_key(other.join("a.key").to_str().unwrap(), &dir)
            .await
            .unwrap_err();
        assert!(matches!(err, KeyFileError::OutsideTokenDir { .. }), "{err}");
        // Not even existence is revealed for paths outside: a missing file elsewhere gives the same.
        let err = read_key(other.join("missing.key").to_str().unwrap(), &dir)
            .await
            .unwrap_err();
        assert!(matches!(err, KeyFileError::OutsideTokenDir { .. }), "{err}");
        let err = read_key("/etc/shadow.key", &dir).await.unwrap_err();
        assert!(matches!(err, KeyFileError::OutsideTokenDir { .. }), "{err}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn refuses_files_that_are_not_key_files() {
        let (_root, dir) = tokens();
        std::fs::write(dir.join("abc.txt"), "k").unwrap();
        std::fs::write(dir.join(".key"), "k").unwrap();
        for name in ["abc.txt", ".key", "abc"] {
            let err = read_key(dir.join(name).to_str().unwrap(), &dir)
                .await
                .unwrap_err();
            assert!(matches!(err, KeyFileError::NotKeyFile(_)), "{name}: {err}");
        }
        // A .key symlink to a non-.key file inside the directory is refused too.
        std::os::unix::fs::symlink(dir.join("abc.txt"), dir.join("alias.key")).unwrap();
        let err = read_key(dir.join("alias.key").to_str().unwrap(), &dir)
            .await
            .unwrap_err();
        assert!(matches!(err, KeyFileError::NotKeyFile(_)), "{err}");
        std::fs::create_dir(dir.join("sub.key")).unwrap();
        let err = read_key(dir.join("sub.key").to_str().unwrap(), &dir)
            .await
            .unwrap_err();
        assert!(matches!(err, KeyFileError::NotAFile(_)), "{err}");
    }

    #[tokio::test]
    async fn refuses_a_file_over_4096_bytes_and_accepts_exactly_4096() {
        let (_root, dir) = tokens();
        let big = dir.join("big.key");
        std::fs::write(&big, "k".repeat(4097)).unwrap();
        let err = read_key(big.to_str().unwrap(), &dir).await.unwrap_err();
        assert!(matches!(err, KeyFileError::TooLarge { size: 4097, .. }), "{err}");
        let edge = dir.join("edge.key");
        std::fs::write(&edge, "k".repeat(4096)).unwrap();
        assert_eq!(
            read_key(edge.to_str().unwrap(), &dir)
                .await
                .unwrap()
                .secret()
                .len(),
            4096
        );
    }

    #[tokio::test]
    async fn refuses_an_unreadable_key_and_binary_content_without_echoing_it() {
        let (_root, dir) = tokens();
        let bin = dir.join("bin.key");
        std::fs::write(&bin, b"ab\ncd").unwrap();
        let err = read_key(bin.to_str().unwrap(), &dir).await.unwrap_err();
        assert!(matches!(err, KeyFileError::NotText(_)), "{err}");
        let missing = dir.join("missing.key");
        let err = read_key(missing.to_str().unwrap(), &dir).await.unwrap_err();
        assert!(
            matches!(err, KeyFileError::Io { .. }) && err.to_string().contains("himds"),
            "{err}"
        );
    }
}
