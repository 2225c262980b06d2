//! Every local filesystem call of the library goes through [`Fs`], one small trait: the
//! commit protocol's renames, links and fsyncs, the journal's appends, the lock file, the
//! staged files. [`Real`] is the operating system; a test double that fails from its k-th
//! call on lets the crash matrix stop a run at every local write, fsync, rename and link.
//! `clippy.toml` forbids `std::fs` everywhere else in the library.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How [`Fs::open`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// A new file, for appending; fails if it exists.
    CreateNew,
    /// An existing file, to read and append.
    Append,
    /// Created or truncated, to write.
    Truncate,
    /// An existing file, to read.
    Read,
    /// Created if missing, never truncated, to read and write (a lock file).
    Lock,
}

/// One entry of [`Fs::read_dir`].
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: String,
    pub path: PathBuf,
    pub is_file: bool,
}

/// A file found by [`Fs::walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walked {
    /// The path below the walked folder, `/`-separated.
    pub relative: String,
    /// Bytes.
    pub size: u64,
    /// Its identity, as [`Fs::identity`] gives it.
    pub identity: String,
}

/// The local filesystem, as the library uses it.
pub trait Fs: Send + Sync + std::fmt::Debug {
    fn create_dir_all(&self, p: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Swaps two paths atomically (`renameat2(RENAME_EXCHANGE)`); `Ok(false)` where the
    /// system cannot.
    fn exchange(&self, a: &Path, b: &Path) -> io::Result<bool>;
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, p: &Path) -> io::Result<()>;
    /// fsync of a file or folder, by path.
    fn sync(&self, p: &Path) -> io::Result<()>;
    fn read(&self, p: &Path) -> io::Result<Vec<u8>>;
    /// Writes a whole file (created or truncated), without fsync.
    fn write(&self, p: &Path, bytes: &[u8]) -> io::Result<()>;
    fn read_dir(&self, p: &Path) -> io::Result<Vec<DirEntry>>;
    fn exists(&self, p: &Path) -> bool;
    /// What identifies a file's current version without reading it: inode, modification
    /// time and change time, to the nanosecond (`ino:mtime:ctime`).
    fn identity(&self, p: &Path) -> io::Result<String>;
    /// Every file below folder `p`, recursively, with its size and identity, from one
    /// look at each folder entry (symbolic links are followed, as readers follow them).
    fn walk(&self, p: &Path) -> io::Result<Vec<Walked>>;
    fn is_dir(&self, p: &Path) -> io::Result<bool>;
    fn canonicalize(&self, p: &Path) -> io::Result<PathBuf>;
    fn copy(&self, from: &Path, to: &Path) -> io::Result<u64>;
    fn open(&self, p: &Path, how: Open) -> io::Result<Arc<dyn File>>;
}

/// An open file.
#[allow(clippy::len_without_is_empty)]
pub trait File: Send + Sync {
    fn write_all(&self, bytes: &[u8]) -> io::Result<()>;
    /// Reads on from the current position (0 at the end).
    fn read(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn sync_all(&self) -> io::Result<()>;
    fn sync_data(&self) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    /// An exclusive advisory lock (`flock`), without waiting; `Ok(false)` if another
    /// process holds it. The kernel drops it when the process dies.
    fn try_lock(&self) -> io::Result<bool>;
    /// A shared advisory lock, without waiting; `Ok(false)` if another process holds it
    /// exclusively.
    fn try_lock_shared(&self) -> io::Result<bool>;
}

/// `inode:mtime:ctime`, the times to the nanosecond: what tells one version of a local
/// file from another without reading it.
fn identity_of(m: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "{}:{}.{:09}:{}.{:09}",
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    )
}

/// The operating system's filesystem.
#[derive(Debug, Default)]
pub struct Real;

/// The operating system's filesystem, shared.
pub fn real() -> Arc<dyn Fs> {
    Arc::new(Real)
}

impl Fs for Real {
    fn create_dir_all(&self, p: &Path) -> io::Result<()> {
        std::fs::create_dir_all(p)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn exchange(&self, a: &Path, b: &Path) -> io::Result<bool> {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::ffi::OsStrExt;
            let ca = std::ffi::CString::new(a.as_os_str().as_bytes()).map_err(io::Error::other)?;
            let cb = std::ffi::CString::new(b.as_os_str().as_bytes()).map_err(io::Error::other)?;
            // SAFETY: both are valid NUL-terminated paths.
            let rc = unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    ca.as_ptr(),
                    libc::AT_FDCWD,
                    cb.as_ptr(),
                    libc::RENAME_EXCHANGE,
                )
            };
            if rc == 0 {
                return Ok(true);
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => Ok(false),
                _ => Err(err),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (a, b);
            Ok(false)
        }
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::hard_link(from, to)
    }

    fn remove_dir_all(&self, p: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(p)
    }

    fn sync(&self, p: &Path) -> io::Result<()> {
        std::fs::File::open(p)?.sync_all()
    }

    fn read(&self, p: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(p)
    }

    fn write(&self, p: &Path, bytes: &[u8]) -> io::Result<()> {
        std::fs::write(p, bytes)
    }

    fn read_dir(&self, p: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(p)? {
            let e = e?;
            out.push(DirEntry {
                name: e.file_name().to_string_lossy().into_owned(),
                path: e.path(),
                is_file: e.file_type().map(|t| t.is_file()).unwrap_or(false),
            });
        }
        Ok(out)
    }

    fn identity(&self, p: &Path) -> io::Result<String> {
        Ok(identity_of(&std::fs::metadata(p)?))
    }

    fn walk(&self, p: &Path) -> io::Result<Vec<Walked>> {
        fn walk_into(dir: &Path, prefix: &str, out: &mut Vec<Walked>) -> io::Result<()> {
            for e in std::fs::read_dir(dir)? {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                let relative = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                let mut meta = e.metadata()?;
                if meta.file_type().is_symlink() {
                    meta = match std::fs::metadata(e.path()) {
                        Ok(m) => m,
                        // A dangling link is not a file anyone reads.
                        Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                        Err(err) => return Err(err),
                    };
                }
                if meta.is_dir() {
                    walk_into(&e.path(), &relative, out)?;
                } else if meta.is_file() {
                    out.push(Walked {
                        relative,
                        size: meta.len(),
                        identity: identity_of(&meta),
                    });
                }
            }
            Ok(())
        }
        let mut out = Vec::new();
        walk_into(p, "", &mut out)?;
        Ok(out)
    }
    fn exists(&self, p: &Path) -> bool {
        p.exists()
    }

    fn is_dir(&self, p: &Path) -> io::Result<bool> {
        Ok(std::fs::metadata(p)?.is_dir())
    }

    fn canonicalize(&self, p: &Path) -> io::Result<PathBuf> {
        std::fs::canonicalize(p)
    }

    fn copy(&self, from: &Path, to: &Path) -> io::Result<u64> {
        std::fs::copy(from, to)
    }

    fn open(&self, p: &Path, how: Open) -> io::Result<Arc<dyn File>> {
        let mut o = std::fs::OpenOptions::new();
        match how {
            Open::CreateNew => o.append(true).create_new(true),
            Open::Append => o.read(true).append(true),
            Open::Truncate => o.write(true).create(true).truncate(true),
            Open::Read => o.read(true),
            Open::Lock => o.read(true).write(true).create(true).truncate(false),
        };
        Ok(Arc::new(RealFile(o.open(p)?)))
    }
}

struct RealFile(std::fs::File);

impl File for RealFile {
    fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        (&self.0).write_all(bytes)
    }

    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.0).read(buf)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn try_lock(&self) -> io::Result<bool> {
        self.flock(libc::LOCK_EX)
    }

    fn try_lock_shared(&self) -> io::Result<bool> {
        self.flock(libc::LOCK_SH)
    }
}

impl RealFile {
    fn flock(&self, how: libc::c_int) -> io::Result<bool> {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor this value owns.
        let rc = unsafe { libc::flock(self.0.as_raw_fd(), how | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => Ok(false),
            _ => Err(err),
        }
    }
}
