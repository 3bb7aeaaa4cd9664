//! Waiting, bounded, for a child process that should exit by itself.

use std::{
    process::Child,
    time::{Duration, Instant},
};

/// Polls `child` until it exits and returns its exit code; a child still running after `limit`
/// is killed (and reaped) and reported as `None`.
pub fn exit_code_within(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
