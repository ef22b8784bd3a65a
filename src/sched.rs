//! The agent's place on the CPU beside the server.
//!
//! The agent shares a pod, and often its CPUs, with `mysqld`. What it does
//! in bulk (a clone it serves, the backup that feeds it, the read-ahead) is
//! not urgent; a commit the server wakes for is. On Linux 6.12 and later the
//! fair scheduler takes a requested time slice per thread: a thread with a
//! short one gives way after it, instead of running out the default slice
//! (about 3 ms on two CPUs) while the commit waits. (Woken while several of
//! the agent's threads are runnable, a server thread may still wait for
//! each of them in turn: `perf sched` showed waits of up to 0.9 ms.)
//! Its share of the CPU stays the same, so unlike a lower priority it can
//! never starve, nor hold up the server while it holds a lock the server
//! waits for (a backup's last phase blocks commits).
//!
//! On the disk, the thread that reads a capped donor's datadir ahead of its
//! backup asks for the idle I/O class: an I/O scheduler that keeps classes
//! apart (mq-deadline, BFQ) sends the server's reads and writes first.

use std::io;

/// The slice the agent asks for: the least the kernel grants.
pub const SLICE_NS: u64 = 100_000;

/// `struct sched_attr` of `sched_setattr(2)`, its first version.
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

/// Asks for a short time slice for the calling thread, keeping its policy
/// and nice value. Threads and processes it starts later inherit it (the
/// backup a donor runs, and every thread of that). Kernels before 6.12 take
/// the request and ignore the slice.
pub fn short_slice() -> io::Result<()> {
    set_slice(SLICE_NS)
}

/// Gives the calling thread the kernel's default time slice again: what a
/// program it runs as itself (init's `exec` of the server) must start with,
/// for the server is the work that must not give way.
pub fn default_slice() -> io::Result<()> {
    set_slice(0)
}

/// `sched_setattr(2)` with `runtime` as the slice (0: the default).
fn set_slice(runtime: u64) -> io::Result<()> {
    let attr = SchedAttr {
        size: size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice: rustix::process::getpriority_process(None)?,
        priority: 0,
        runtime,
        deadline: 0,
        period: 0,
    };
    // SAFETY: sched_setattr only reads the attribute struct, which outlives
    // the call.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `IOPRIO_CLASS_IDLE` of `ioprio_set(2)`, shifted into place.
const IOPRIO_IDLE: libc::c_int = 3 << 13;
/// `IOPRIO_WHO_PROCESS`: one thread, 0 for the caller.
const IOPRIO_WHO_PROCESS: libc::c_int = 1;

/// Puts the calling thread's reads and writes in the idle I/O class: they
/// reach the disk when nothing of a higher class waits (or, under
/// mq-deadline, after its aging limit). Only for work that nothing waits on
/// while holding a lock.
pub fn idle_io() -> io::Result<()> {
    // SAFETY: ioprio_set takes no pointer.
    if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_IDLE) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The `se.slice` the kernel reports in a `/proc/.../sched` text, if
    /// it reports one (6.6 and later).
    fn slice(sched: &str) -> Option<u64> {
        sched
            .lines()
            .find(|l| l.starts_with("se.slice"))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.trim().parse().ok())
    }

    fn kernel_at_least(major: u32, minor: u32) -> bool {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>());
        match (parts.next(), parts.next()) {
            (Some(Ok(a)), Some(Ok(b))) => (a, b) >= (major, minor),
            _ => false,
        }
    }

    #[test]
    fn a_short_slice_reaches_the_programs_a_thread_starts() {
        // In a thread of its own, not to change the test runner's.
        let (before, own, child, nice) = std::thread::spawn(|| {
            // SAFETY: gettid takes no argument.
            let tid = unsafe { libc::syscall(libc::SYS_gettid) };
            let nice = rustix::process::getpriority_process(None).unwrap();
            let read = || std::fs::read_to_string(format!("/proc/self/task/{tid}/sched")).unwrap();
            let before = slice(&read());
            short_slice().unwrap();
            let own = slice(&read());
            let out = Command::new("cat")
                .arg("/proc/self/sched")
                .output()
                .unwrap();
            let after = rustix::process::getpriority_process(None).unwrap();
            (
                before,
                own,
                slice(&String::from_utf8_lossy(&out.stdout)),
                (nice, after),
            )
        })
        .join()
        .unwrap();
        assert_eq!(nice.0, nice.1, "the nice value is kept");
        if !kernel_at_least(6, 12) {
            eprintln!("this kernel takes no slice request; nothing more to check");
            return;
        }
        assert_ne!(
            before,
            Some(SLICE_NS),
            "the default slice is not the short one"
        );
        assert_eq!(own, Some(SLICE_NS), "the thread's own slice");
        assert_eq!(
            child,
            Some(SLICE_NS),
            "a program the thread starts inherits it"
        );
    }

    #[test]
    fn idle_io_is_the_calling_threads_alone() {
        // SAFETY: ioprio_get takes no pointer.
        let class = || unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0) } >> 13;
        let (before, after) = std::thread::spawn(move || {
            let before = class();
            idle_io().unwrap();
            (before, class())
        })
        .join()
        .unwrap();
        assert_ne!(before, 3, "a thread starts outside the idle class");
        assert_eq!(after, 3, "the thread is in the idle class");
        assert_ne!(class(), 3, "other threads are not");
    }
}
