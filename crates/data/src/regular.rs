//! Input files must be regular files: opening a FIFO blocks until something writes to it, and a
//! device or directory is never a data file.

use std::path::Path;

/// `Ok` for a regular file (links followed); an `InvalidInput` error naming what `path` is
/// otherwise, and the operating system's error where it cannot be looked at.
pub fn ensure_regular_file(path: &Path) -> std::io::Result<()> {
    let kind = std::fs::metadata(path)?.file_type();
    if kind.is_file() {
        return Ok(());
    }
    let what = if kind.is_dir() { "a directory" } else { "not a regular file (a FIFO, socket or device)" };
    Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{what}; only regular files are read")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_pass() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.npz");
        std::fs::write(&file, b"x").unwrap();
        assert!(ensure_regular_file(&file).is_ok());
        let e = ensure_regular_file(dir.path()).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        assert_eq!(ensure_regular_file(&dir.path().join("none")).unwrap_err().kind(), std::io::ErrorKind::NotFound);
        #[cfg(unix)]
        {
            let fifo = dir.path().join("fifo.npz");
            let made = std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success());
            if made {
                let e = ensure_regular_file(&fifo).unwrap_err();
                assert!(e.to_string().contains("FIFO"), "{e}");
            }
        }
    }
}
