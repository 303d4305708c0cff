//! Exit codes (sysexits) and the failure that ends the process: how each kind of error maps to
//! one, so that systemd restarts what may pass (75) and never what cannot (65, 73, 78).

/// A failure that ends the process, with its sysexits code.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub error: anyhow::Error,
}

pub const EX_DATAERR: i32 = 65;
pub const EX_NOINPUT: i32 = 66;
pub const EX_SOFTWARE: i32 = 70;
pub const EX_CANTCREAT: i32 = 73;
pub const EX_TEMPFAIL: i32 = 75;
pub const EX_CONFIG: i32 = 78;

impl Failure {
    pub fn new(code: i32, error: impl Into<anyhow::Error>) -> Failure {
        Failure { code, error: error.into() }
    }
}

impl From<crate::store::Error> for Failure {
    fn from(e: crate::store::Error) -> Failure {
        use crate::store::ErrorKind;
        // sysexits: 65 damaged data (never restarted: RestartPreventExitStatus), 73 a read-only
        // store, 75 temporary (locked, I/O). The message already carries sled's error: one line.
        let code = match e.kind() {
            ErrorKind::Damaged => EX_DATAERR,
            ErrorKind::Unavailable if e.os_error() == Some(libc::EROFS) => EX_CANTCREAT,
            ErrorKind::Locked | ErrorKind::Unavailable => EX_TEMPFAIL,
        };
        Failure::new(code, anyhow::anyhow!(e.to_string()))
    }
}
