//! Terminal output: tables, times, JSON and progress bars on stderr.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// Prints a value as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Left-aligned columns, widths from the widest cell.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// `YYYY-MM-DD HH:MM:SS` UTC, or `-`.
pub fn fmt_time(t: Option<i64>) -> String {
    let Some(t) = t else { return "-".into() };
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

pub fn or_dash(s: Option<&str>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or("-").to_owned()
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds, `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    let bad = || format!("{s:?} is not Unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ");
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t.trim_end_matches('Z'))),
        None => (s, None),
    };
    let num = |p: Option<&str>| p.and_then(|x| x.parse::<u32>().ok()).ok_or_else(bad);
    let mut parts = date.split('-');
    let y = num(parts.next())?;
    let (m, d) = (num(parts.next())?, num(parts.next())?);
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let mut secs = 0;
    if let Some(t) = time {
        let mut hms = t.split(':');
        let (h, mi) = (num(hms.next())?, num(hms.next())?);
        let sec = hms.next().map_or(Ok(0), |x| num(Some(x)))?;
        if h > 23 || mi > 59 || sec > 60 || hms.next().is_some() {
            return Err(bad());
        }
        secs = i64::from(h * 3600 + mi * 60 + sec);
    }
    Ok(days_from_civil(i64::from(y), m, d) * 86_400 + secs)
}

fn draw_target() -> Option<ProgressDrawTarget> {
    std::io::stderr().is_terminal().then(ProgressDrawTarget::stderr)
}

fn bar(len: Option<u64>, template: &str, msg: &str) -> ProgressBar {
    let Some(target) = draw_target() else {
        return ProgressBar::hidden();
    };
    let pb = ProgressBar::with_draw_target(len, target);
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(msg.to_owned());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// A bar over bytes; a spinner with a byte count when the total is unknown.
pub fn bytes(total: Option<u64>, msg: &str) -> ProgressBar {
    match total {
        Some(_) => bar(total, "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})", msg),
        None => bar(None, "{spinner} {msg} {bytes} ({bytes_per_sec})", msg),
    }
}

/// A bar over items.
pub fn items(total: u64, msg: &str) -> ProgressBar {
    bar(Some(total), "{msg} [{bar:30}] {human_pos}/{human_len} ({per_sec}, {eta})", msg)
}

/// A spinner for work whose progress the server does not report.
pub fn spinner(msg: &str) -> ProgressBar {
    bar(None, "{spinner} {msg} ({elapsed})", msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        assert_eq!(fmt_time(Some(0)), "1970-01-01 00:00:00");
        assert_eq!(fmt_time(Some(1_767_225_600)), "2026-01-01 00:00:00");
        assert_eq!(fmt_time(None), "-");
        assert_eq!(parse_time("2026-01-01"), Ok(1_767_225_600));
        assert_eq!(parse_time("2024-02-29T12:30:05Z"), Ok(1_709_209_805));
        assert_eq!(fmt_time(Some(1_709_209_805)), "2024-02-29 12:30:05");
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000));
        assert!(parse_time("2026-13-01").is_err());
        assert!(parse_time("tomorrow").is_err());
    }
}
