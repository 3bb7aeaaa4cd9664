//! Bounded reads of small files: a regular file only, never more than a bound. The library reads
//! the projected service-account token and an identity binding's CA certificate with it; the
//! `azure-wi` binary reads its serving certificate pair and signing-key files with it too.
//!
//! Symlinks are followed, as the kubelet's projected-volume layout needs. The type is checked
//! before opening, the file is opened non-blocking (a FIFO swapped in after the check cannot hang
//! the read) and checked again once open, and at most one byte more than the bound is ever read.

use std::path::Path;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// Opening or reading failed.
    #[error("{0}")]
    Io(std::io::Error),
    /// A directory, FIFO, socket or device: what it is, in words.
    #[error("it is {0}, not a regular file")]
    NotRegular(&'static str),
    /// Larger than the bound.
    #[error("it is larger than {max} bytes")]
    TooLarge {
        /// The bound.
        max: u64,
    },
}

/// The contents of the regular file at `path`, if it holds at most `max` bytes.
pub fn read_regular_file(path: &Path, max: u64) -> Result<Vec<u8>, FileError> {
    use std::io::Read;
    let checked = std::fs::metadata(path).map_err(FileError::Io)?;
    file_kind(&checked)?;
    if checked.len() > max {
        return Err(FileError::TooLarge { max });
    }
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.custom_flags(libc::O_NONBLOCK);
    }
    let file = open.open(path).map_err(FileError::Io)?;
    file_kind(&file.metadata().map_err(FileError::Io)?)?;
    let mut contents = Vec::with_capacity(checked.len() as usize);
    file.take(max + 1)
        .read_to_end(&mut contents)
        .map_err(FileError::Io)?;
    if contents.len() as u64 > max {
        return Err(FileError::TooLarge { max });
    }
    Ok(contents)
}

/// Like [`read_regular_file`], on the blocking pool (never on a runtime thread).
pub async fn read_regular_file_async(path: std::path::PathBuf, max: u64) -> Result<Vec<u8>, FileError> {
    tokio::task::spawn_blocking(move || read_regular_file(&path, max))
        .await
        .unwrap_or_else(|e| Err(FileError::Io(std::io::Error::other(e))))
}

/// Ok for a regular file, else what the file is.
fn file_kind(metadata: &std::fs::Metadata) -> Result<(), FileError> {
    let t = metadata.file_type();
    if t.is_file() {
        return Ok(());
    }
    let kind = if t.is_dir() {
        "a directory"
    } else {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if t.is_fifo() {
                "a FIFO (named pipe)"
            } else if t.is_char_device() || t.is_block_device() {
                "a device"
            } else if t.is_socket() {
                "a socket"
            } else {
                "not a regular file"
            }
        }
        #[cfg(not(unix))]
        {
            "not a regular file"
        }
    };
    Err(FileError::NotRegular(kind))
}
