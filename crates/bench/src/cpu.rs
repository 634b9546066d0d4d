//! Where the machine's CPU went during a step: the server's share, the load
//! generator's own, and how much stayed idle. A step that leaves the cores
//! idle is held back by waiting (for a commit's sync, say), not by CPU; one
//! that keeps them busy is held back by what each request costs. Per thread
//! (by name) it shows whether one stage, such as the SQLite writer, is
//! saturated: a serial stage near 100 % of a core caps the step.

use serde::Serialize;
use std::collections::HashMap;
use std::time::Instant;

/// Linux reports process and machine times in USER_HZ ticks, 100 per second
/// on every architecture it runs on.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// CPU counters taken at the start of a step.
pub struct CpuMark {
    server_pid: u32,
    server_secs: f64,
    client_secs: f64,
    machine: Option<MachineTicks>,
    threads: HashMap<u32, ThreadTimes>,
    started: Instant,
}

/// What a step used, from one [`CpuMark`] to the end of the step.
pub struct CpuUse {
    /// The server's CPU time (user and system, all threads), in seconds.
    pub server_secs: f64,
    /// The load generator's own CPU time (this process), in seconds.
    pub client_secs: f64,
    /// The share of all cores' time that was idle (I/O wait included), 0 to 1;
    /// `None` where /proc/stat cannot be read.
    pub idle_share: Option<f64>,
    /// The server's threads by name, busiest first.
    pub threads: Vec<ThreadUse>,
}

/// How busy the server's threads of one name were during a step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ThreadUse {
    pub name: String,
    /// How many threads of that name ran during the step.
    pub threads: usize,
    /// Their CPU time over the step's wall time, in per cent of one core
    /// (two threads each busy half the time: 100).
    pub busy_pct: f64,
    /// The time they were runnable but waited for a core, in the same unit
    /// (`None` where the kernel does not keep scheduler statistics).
    pub queued_pct: Option<f64>,
}

/// A thread's name, and its time on a core and waiting for one so far, in ns.
#[derive(Clone, Debug, PartialEq)]
struct ThreadTimes {
    name: String,
    on_cpu_ns: u64,
    queued_ns: Option<u64>,
}

impl CpuMark {
    pub fn now(server_pid: u32) -> CpuMark {
        CpuMark {
            server_pid,
            server_secs: process_secs(&server_pid.to_string()),
            client_secs: process_secs("self"),
            machine: MachineTicks::read(),
            threads: thread_times(server_pid),
            started: Instant::now(),
        }
    }

    pub fn used(&self) -> CpuUse {
        let idle_share = match (self.machine, MachineTicks::read()) {
            (Some(start), Some(end)) => end.idle_share_since(start),
            _ => None,
        };
        let threads = busy_by_name(&self.threads, &thread_times(self.server_pid), self.started.elapsed().as_secs_f64());
        CpuUse {
            server_secs: process_secs(&self.server_pid.to_string()) - self.server_secs,
            client_secs: process_secs("self") - self.client_secs,
            idle_share,
            threads,
        }
    }
}

/// Every thread of a process: its name and times so far (empty where /proc
/// cannot be read). `schedstat` has them to the nanosecond; without it, the
/// CPU time comes from `stat` in 10 ms ticks, which miss a thread that runs
/// in short bursts between two ticks.
fn thread_times(pid: u32) -> HashMap<u32, ThreadTimes> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return HashMap::new() };
    tasks
        .flatten()
        .filter_map(|task| {
            let tid = task.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            let (name, ticks) = name_and_ticks(&stat)?;
            let sched = std::fs::read_to_string(task.path().join("schedstat")).ok().and_then(|s| parse_schedstat(&s));
            let (on_cpu_ns, queued_ns) = match sched {
                Some((on_cpu, queued)) => (on_cpu, Some(queued)),
                None => ((ticks as f64 / CLOCK_TICKS_PER_SEC * 1e9) as u64, None),
            };
            Some((tid, ThreadTimes { name: name.to_owned(), on_cpu_ns, queued_ns }))
        })
        .collect()
}

/// `/proc/…/schedstat`: nanoseconds on a core, nanoseconds runnable but
/// waiting for one, and time slices.
fn parse_schedstat(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace().map(|v| v.parse::<u64>().ok());
    Some((fields.next()??, fields.next()??))
}

/// What each name's threads did between two readings, over `secs` of wall
/// time. A thread that started in between counts in full; one that ended is
/// lost (its time went with it). Names that did not run are left out.
fn busy_by_name(before: &HashMap<u32, ThreadTimes>, after: &HashMap<u32, ThreadTimes>, secs: f64) -> Vec<ThreadUse> {
    // Per name: threads, ns on a core, ns queued (None once a thread lacks it).
    let mut by_name: HashMap<&str, (usize, u64, Option<u64>)> = HashMap::new();
    for (tid, now) in after {
        let was = before.get(tid).filter(|b| b.name == now.name);
        let on_cpu = now.on_cpu_ns.saturating_sub(was.map_or(0, |b| b.on_cpu_ns));
        if on_cpu == 0 {
            continue;
        }
        let queued = match (now.queued_ns, was.map(|b| b.queued_ns)) {
            (Some(q), None) => Some(q),
            (Some(q), Some(Some(b))) => Some(q.saturating_sub(b)),
            _ => None,
        };
        let entry = by_name.entry(now.name.as_str()).or_insert((0, 0, Some(0)));
        entry.0 += 1;
        entry.1 += on_cpu;
        entry.2 = entry.2.zip(queued).map(|(sum, q)| sum + q);
    }
    let pct = |ns: u64| if secs > 0.0 { ns as f64 / 1e9 / secs * 100.0 } else { 0.0 };
    let mut threads: Vec<ThreadUse> = by_name
        .into_iter()
        .map(|(name, (threads, on_cpu, queued))| ThreadUse {
            name: name.to_owned(),
            threads,
            busy_pct: pct(on_cpu),
            queued_pct: queued.map(pct),
        })
        .collect();
    threads.sort_by(|a, b| b.busy_pct.total_cmp(&a.busy_pct).then_with(|| a.name.cmp(&b.name)));
    threads
}

/// The command (or thread) name and user + system ticks of a `/proc/…/stat` line.
fn name_and_ticks(stat: &str) -> Option<(&str, u64)> {
    // The name sits in parentheses and may itself hold spaces or parentheses.
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1;
    // After the name: utime and stime are the 12th and 13th fields.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    Some((name, ticks(11)? + ticks(12)?))
}

/// CPU time a process has used so far (user and system, all threads, also
/// those that ended), in seconds; `process` is a pid or `self`. Unlike
/// requests per second it does not move when a noisy neighbour takes the
/// machine's cores for a while: CPU per request compares two builds fairly.
///
/// Read from the process's CPU-time clock, to the nanosecond: `/proc`'s 10 ms
/// ticks (the fallback) can read zero for a step that ran out of codes within
/// a few milliseconds.
pub fn process_secs(process: &str) -> f64 {
    let pid = if process == "self" { Some(0) } else { process.parse().ok() };
    if let Some(secs) = pid.and_then(cpu_clock_secs) {
        return secs;
    }
    let stat = std::fs::read_to_string(format!("/proc/{process}/stat")).unwrap_or_default();
    name_and_ticks(&stat).map_or(0, |(_, ticks)| ticks) as f64 / CLOCK_TICKS_PER_SEC
}

/// The CPU-time clock of process `pid` (0: this one), in seconds.
#[cfg(target_os = "linux")]
fn cpu_clock_secs(pid: libc::pid_t) -> Option<f64> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: clock_getcpuclockid only writes one clockid_t through the pointer.
    if unsafe { libc::clock_getcpuclockid(pid, &mut clock) } != 0 {
        return None;
    }
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes one timespec through the pointer.
    if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
        return None;
    }
    Some(now.tv_sec as f64 + now.tv_nsec as f64 / 1e9)
}

#[cfg(not(target_os = "linux"))]
fn cpu_clock_secs(_pid: i32) -> Option<f64> {
    None
}

/// The first line of /proc/stat: all cores' time, and the idle part of it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct MachineTicks {
    idle: u64,
    total: u64,
}

impl MachineTicks {
    fn read() -> Option<MachineTicks> {
        MachineTicks::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// `cpu  user nice system idle iowait irq softirq steal guest guest_nice`:
    /// guest time is already counted in user time, so only the first eight add up.
    fn parse(stat: &str) -> Option<MachineTicks> {
        let line = stat.lines().next()?.strip_prefix("cpu ")?;
        let ticks: Vec<u64> = line.split_whitespace().map(|v| v.parse().ok()).collect::<Option<_>>()?;
        if ticks.len() < 5 {
            return None;
        }
        let total = ticks.iter().take(8).sum();
        Some(MachineTicks { idle: ticks[3] + ticks[4], total })
    }

    fn idle_share_since(self, start: MachineTicks) -> Option<f64> {
        let total = self.total.checked_sub(start.total).filter(|t| *t > 0)?;
        let idle = self.idle.checked_sub(start.idle)?;
        Some(idle as f64 / total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_line_of_proc_stat_counts_idle_and_io_wait_as_idle() {
        let start = MachineTicks::parse("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4 5\n").unwrap();
        assert_eq!(start, MachineTicks { idle: 850, total: 1000 });
        // Guest time (the last two) is part of user time already: not added twice.
        let end = MachineTicks::parse("cpu  400 0 150 1050 100 0 0 0 40 0\n").unwrap();
        assert_eq!(end, MachineTicks { idle: 1150, total: 1700 });
        assert_eq!(end.idle_share_since(start), Some(300.0 / 700.0));
        assert_eq!(start.idle_share_since(start), None, "no time passed: no share");
        assert_eq!(MachineTicks::parse("intr 1 2 3"), None);
        assert_eq!(MachineTicks::parse("cpu  1 2 x 4 5"), None);
    }

    /// A thread's times, in milliseconds.
    fn times(name: &str, on_cpu_ms: u64, queued_ms: Option<u64>) -> ThreadTimes {
        ThreadTimes {
            name: name.to_owned(),
            on_cpu_ns: on_cpu_ms * 1_000_000,
            queued_ns: queued_ms.map(|q| q * 1_000_000),
        }
    }

    fn usage(name: &str, threads: usize, busy_pct: f64, queued_pct: Option<f64>) -> ThreadUse {
        ThreadUse { name: name.into(), threads, busy_pct, queued_pct }
    }

    #[test]
    fn a_schedstat_line_gives_time_on_a_core_and_time_queued() {
        assert_eq!(parse_schedstat("289057573 67238371 928\n"), Some((289_057_573, 67_238_371)));
        assert_eq!(parse_schedstat("12"), None);
        assert_eq!(parse_schedstat("x 1 2"), None);
    }

    #[test]
    fn a_stat_line_gives_its_name_and_ticks_whatever_the_name_holds() {
        let line = "4242 (odd) name) S 1 4242 4242 0 -1 4194560 99 0 0 0 7 5 0 0 20 0 3 0 100 0 0";
        assert_eq!(name_and_ticks(line), Some(("odd) name", 12)));
        assert_eq!(name_and_ticks("4242 (short) S 1"), None, "no tick fields");
        assert_eq!(name_and_ticks("garbage"), None);
    }

    #[test]
    fn threads_are_summed_by_name_busiest_first() {
        let before = HashMap::from([
            (1, times("worker", 1000, Some(10))),
            (2, times("worker", 400, Some(20))),
            (3, times("writer", 100, Some(0))),
        ]);
        let after = HashMap::from([
            (1, times("worker", 1500, Some(110))),
            (2, times("worker", 600, Some(120))),
            (3, times("writer", 900, Some(40))),
            // Started during the step: all of its time counts.
            (4, times("sync", 50, Some(10))),
            // Did not run: left out.
            (5, times("idle", 0, Some(0))),
        ]);
        // Two seconds of wall time.
        assert_eq!(
            busy_by_name(&before, &after, 2.0),
            vec![
                usage("writer", 1, 40.0, Some(2.0)),
                usage("worker", 2, 35.0, Some(10.0)),
                usage("sync", 1, 2.5, Some(0.5))
            ]
        );
        // Without scheduler statistics for one of a name's threads, the name has no queued time.
        let partial = HashMap::from([(1, times("worker", 1500, None)), (2, times("worker", 600, Some(120)))]);
        assert_eq!(busy_by_name(&before, &partial, 2.0), vec![usage("worker", 2, 35.0, None)]);
        // A thread id reused under another name is a new thread.
        let reused = HashMap::from([(3, times("other", 300, None))]);
        assert_eq!(busy_by_name(&before, &reused, 1.0), vec![usage("other", 1, 30.0, None)]);
    }

    #[test]
    fn process_cpu_time_is_finer_than_a_tick() {
        for process in ["self".to_owned(), std::process::id().to_string()] {
            let start = process_secs(&process);
            let give_up = std::time::Instant::now() + std::time::Duration::from_secs(5);
            let mut now = start;
            while now == start && std::time::Instant::now() < give_up {
                now = process_secs(std::hint::black_box(&process));
            }
            // `/proc`'s ticks would move by 10 ms at once.
            assert!(now > start && now - start < 0.005, "{process}: {start} → {now}");
        }
    }

    #[test]
    fn this_process_has_used_some_cpu_and_the_machine_reads_back() {
        let mark = CpuMark::now(std::process::id());
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut x = 0u64;
        while process_secs("self") < mark.client_secs + 0.02 && std::time::Instant::now() < give_up {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let used = mark.used();
        assert!(used.client_secs >= 0.02 && x > 0);
        assert!(used.server_secs >= 0.02, "the 'server' here is this very process");
        if let Some(idle) = used.idle_share {
            assert!((0.0..=1.0).contains(&idle), "{idle}");
        }
        // The spinning shows among this process's threads (whatever the harness named this one).
        assert!(used.threads.iter().map(|t| t.busy_pct).sum::<f64>() > 0.0, "{:?}", used.threads);
    }
}
