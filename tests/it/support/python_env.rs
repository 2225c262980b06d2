//! Python virtual environments the tests install on first use (moto, the engines).

use std::path::PathBuf;
use std::process::Command;

/// A Python virtual environment `name` under the target folder holding `packages`,
/// installed on first use (one installer at a time: test processes run in parallel under
/// nextest); `what` says which tests need it. Returns the environment's folder.
pub fn python_env(name: &str, packages: &[&str], what: &str) -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let ready = venv.join("ready");
    if ready.exists() {
        return venv;
    }
    std::fs::create_dir_all(&venv).unwrap();
    let lock = std::fs::File::create(venv.with_extension("lock")).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file we own; released when `lock` drops.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    if !ready.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap()
            .success()
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet"])
                .args(packages)
                .status()
                .unwrap()
                .success();
        assert!(
            ok,
            "could not install {packages:?}; {what} need python3 with pip and access to PyPI"
        );
        std::fs::write(&ready, "").unwrap();
    }
    venv
}
