//! Failpoints for the integration tests, in debug builds only (release builds compile them to
//! nothing): `hit(name)` blocks while the file `$SIAR_FAILPOINTS/<name>` exists, so a test can
//! wedge a loop at a named point and let it go again. On arrival the point writes
//! `<name>.hit` beside it, so the test knows the loop is held there.

/// Blocks here while the test's failpoint file `name` exists.
pub fn hit(name: &str) {
    #[cfg(debug_assertions)]
    if let Some(dir) = std::env::var_os("SIAR_FAILPOINTS") {
        let path = std::path::Path::new(&dir).join(name);
        if path.exists() {
            let _ = std::fs::write(std::path::Path::new(&dir).join(format!("{name}.hit")), b"");
        }
        while path.exists() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

/// Whether the test's failpoint file `name` exists (a fault to inject, in debug builds only).
pub fn active(name: &str) -> bool {
    #[cfg(debug_assertions)]
    if let Some(dir) = std::env::var_os("SIAR_FAILPOINTS") {
        return std::path::Path::new(&dir).join(name).exists();
    }
    let _ = name;
    false
}
