//! Writing a file the user named: only ever over a regular file. A symlink
//! is followed to its target (the target is replaced, the link stays); a
//! device, FIFO, socket or directory at the path is refused. The bytes go
//! to a temporary file beside the target and are renamed over it, so a
//! reader never sees half a file.

use std::io::{Error, ErrorKind, Result, Write};
use std::path::{Path, PathBuf};

/// The regular file (existing or not) that writing `path` replaces.
pub fn target(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        let meta = match std::fs::symlink_metadata(&p) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(p),
            Err(e) => return Err(e),
            Ok(m) => m,
        };
        let kind = meta.file_type();
        if kind.is_file() {
            return Ok(p);
        }
        if !kind.is_symlink() {
            return Err(Error::other(format!(
                "{} is {}, not a regular file; esx writes outputs only over regular files",
                p.display(),
                describe(&kind)
            )));
        }
        let to = std::fs::read_link(&p)?;
        p = if to.is_absolute() {
            to
        } else {
            p.parent().unwrap_or(Path::new(".")).join(to)
        };
    }
    Err(Error::other(format!(
        "{}: too many levels of symbolic links",
        path.display()
    )))
}

fn describe(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Writes `bytes` as the file at `path` (see the module's rules).
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let target = target(path)?;
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = shared_temp_file(&dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(&target).map_err(|e| e.error)?;
    Ok(())
}

/// A temporary file beside its destination, readable by everyone like a file
/// made with `File::create` (tempfile's default of 0600 would hide a shared
/// dataset's crops from other users of a cluster).
pub(crate) fn shared_temp_file(dir: &std::path::Path) -> std::io::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix(".esx-tmp")
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_replaced_links_followed_devices_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.html");
        write(&file, b"one").unwrap();
        write(&file, b"two").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        let link = dir.path().join("link.html");
        std::os::unix::fs::symlink("a.html", &link).unwrap();
        write(&link, b"three").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink(),
            "the link stays"
        );
        assert_eq!(
            std::fs::read(&file).unwrap(),
            b"three",
            "its target is replaced"
        );
        let err = write(Path::new("/dev/null"), b"x").unwrap_err().to_string();
        assert!(err.contains("a character device"), "{err}");
        let err = write(dir.path(), b"x").unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");
    }
}
