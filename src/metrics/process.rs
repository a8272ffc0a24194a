//! The standard `process_*` metrics (the names Prometheus' client libraries use), read from
//! `/proc/self`: what an operator watches first — memory, descriptors against their limit, CPU.

use std::fmt::Write;

use super::family;

/// Appends the process metrics to `out`; a figure that cannot be read is left out.
pub(super) fn render(out: &mut String) {
    let page = rustix::param::page_size() as f64;
    if let Some((virtual_pages, resident_pages)) = statm() {
        gauge(
            out,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            resident_pages as f64 * page,
        );
        gauge(
            out,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            virtual_pages as f64 * page,
        );
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        // The directory handle itself is one of the entries.
        let open = entries.count().saturating_sub(1);
        gauge(
            out,
            "process_open_fds",
            "Number of open file descriptors.",
            open as f64,
        );
    }
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if let Some(max) = limit.current {
        gauge(
            out,
            "process_max_fds",
            "Maximum number of open file descriptors.",
            max as f64,
        );
    }
    if let Some(times) = stat_times() {
        family(
            out,
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
        );
        let _ = writeln!(out, "process_cpu_seconds_total {}", times.cpu_seconds);
        if let Some(boot) = boot_time() {
            gauge(
                out,
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                boot + times.start_seconds_after_boot,
            );
        }
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    family(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

/// (virtual, resident) size in pages.
fn statm() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    Some((fields.next()??, fields.next()??))
}

struct Times {
    cpu_seconds: f64,
    start_seconds_after_boot: f64,
}

/// From `/proc/self/stat`: utime and stime (fields 14, 15) and starttime (22), in clock ticks.
fn stat_times() -> Option<Times> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields resume after the
    // last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so field n is fields[n - 3].
    let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    let ticks = clock_ticks_per_second();
    Some(Times {
        cpu_seconds: (field(14)? + field(15)?) / ticks,
        start_seconds_after_boot: field(22)? / ticks,
    })
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    #[allow(unsafe_code)]
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Boot time, seconds since the epoch (`btime` in `/proc/stat`).
fn boot_time() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("btime "))?;
    line["btime ".len()..].trim().parse().ok()
}
