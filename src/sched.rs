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
//! A capped donor (`--clone-max-rate`: the server comes first) goes
//! further: its backup and the read-ahead run at nice 19 ([`background`]).
//! In this scheduler a short slice is also an early deadline, so at the
//! default weight the agent's threads are picked as soon as a woken server
//! thread; at nice 19 the server's comes first (a capped donor's master:
//! p99 1.8x idle's against 2.6-2.9x). Weight 15 is never starved, but on a
//! CPU the server keeps busy a capped backup goes slowly, its last phase,
//! which blocks commits, too. An uncapped clone keeps the default.
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

/// The nice value of background work: the least weight the fair
/// scheduler gives (15 against a default thread's 1024).
pub const BACKGROUND_NICE: i32 = 19;

/// Makes the calling thread background work: nice 19, keeping its policy
/// and slice; threads and programs it starts later inherit it. A server
/// thread that wakes is picked before it, however short its slice, yet it
/// is never starved (a lower policy, `SCHED_IDLE`, ran a capped donor's
/// backup so late that its commit-blocking last phase stalled the server
/// longer: 7.3 ms p99 against 2.2 ms at nice 19). The value cannot be
/// lowered again without `CAP_SYS_NICE`: only for a thread, or a child
/// between fork and exec, that does nothing else after.
pub fn background() -> io::Result<()> {
    // SAFETY: setpriority takes no pointer; on Linux, PRIO_PROCESS with 0
    // is the calling thread alone. Async-signal-safe (a bare system call).
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE) } != 0 {
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
    fn background_work_is_the_calling_threads_and_its_programs() {
        let nice = || rustix::process::getpriority_process(None).unwrap();
        let (before, own, child) = std::thread::spawn(move || {
            let before = nice();
            background().unwrap();
            let out = Command::new("sh")
                .args(["-c", "cut -d' ' -f19 /proc/self/stat"])
                .output()
                .unwrap();
            (
                before,
                nice(),
                String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            )
        })
        .join()
        .unwrap();
        assert_ne!(before, BACKGROUND_NICE, "a thread starts in the foreground");
        assert_eq!(own, BACKGROUND_NICE, "the thread is background work");
        assert_eq!(
            child,
            BACKGROUND_NICE.to_string(),
            "a program it starts inherits it"
        );
        assert_ne!(nice(), BACKGROUND_NICE, "other threads are not");
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
