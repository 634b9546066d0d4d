//! Where the machine's CPU went during a step: the server's share, the load
//! generator's own, and how much stayed idle. A step that leaves the cores
//! idle is held back by waiting (for a commit's sync, say), not by CPU; one
//! that keeps them busy is held back by what each request costs.

/// Linux reports process and machine times in USER_HZ ticks, 100 per second
/// on every architecture it runs on.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// CPU counters taken at the start of a step.
pub struct CpuMark {
    server_pid: u32,
    server_secs: f64,
    client_secs: f64,
    machine: Option<MachineTicks>,
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
}

impl CpuMark {
    pub fn now(server_pid: u32) -> CpuMark {
        CpuMark {
            server_pid,
            server_secs: process_secs(&server_pid.to_string()),
            client_secs: process_secs("self"),
            machine: MachineTicks::read(),
        }
    }

    pub fn used(&self) -> CpuUse {
        let idle_share = match (self.machine, MachineTicks::read()) {
            (Some(start), Some(end)) => end.idle_share_since(start),
            _ => None,
        };
        CpuUse {
            server_secs: process_secs(&self.server_pid.to_string()) - self.server_secs,
            client_secs: process_secs("self") - self.client_secs,
            idle_share,
        }
    }
}

/// CPU time a process has used so far (user and system, all threads), in
/// seconds; `process` is a pid or `self`. Unlike requests per second it does
/// not move when a noisy neighbour takes the machine's cores for a while: CPU
/// per request compares two builds fairly.
pub fn process_secs(process: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{process}/stat")).unwrap_or_default();
    // After the command name (which may hold spaces): utime and stime are the 12th and 13th fields.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / CLOCK_TICKS_PER_SEC
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
    }
}
