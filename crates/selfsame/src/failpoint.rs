//! Failpoints: named places where a test can make selfsame stop dead, as a
//! crash or a power cut would.
//!
//! Set `SELFSAME_FAILPOINT=<name>` and the process exits with status 97 the
//! moment it reaches that point, without cleaning up. Testing only.

/// Exit status used when a failpoint fires.
pub const EXIT: i32 = 97;

/// Stops the process if the failpoint `name` is armed.
pub fn hit(name: &str) {
    if let Some(armed) = std::env::var_os("SELFSAME_FAILPOINT") {
        if armed == name {
            eprintln!("selfsame: failpoint {name} fired");
            std::process::exit(EXIT);
        }
    }
}
