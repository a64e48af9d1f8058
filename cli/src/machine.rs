//! What `--instances auto` reads from the machine: the cores this process may use and the
//! memory available to it (the cgroup's limit when it has one, as in a container).

use destino_serving::Machine;

/// Share of the available memory the instances of one model may take when
/// `--instances-memory-mb` is not given.
const DEFAULT_MEMORY_SHARE: u64 = 4;

/// This machine, with `memory_mb` as the per-model budget or a quarter of what is available.
pub fn this_machine(memory_mb: Option<u64>) -> Machine {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let memory_budget = match memory_mb {
        Some(mb) => mb.saturating_mul(1 << 20),
        None => available_memory().map_or(u64::MAX, |bytes| bytes / DEFAULT_MEMORY_SHARE),
    };
    Machine {
        cores,
        memory_budget,
    }
}

/// Bytes of memory available now: `MemAvailable`, or less when a cgroup limit leaves less.
fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let available = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemAvailable:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())?
        .saturating_mul(1024);
    let cgroup_left = cgroup_file("memory.max")
        .zip(cgroup_file("memory.current"))
        .map(|(max, current)| max.saturating_sub(current));
    Some(cgroup_left.map_or(available, |left| left.min(available)))
}

/// A numeric cgroup v2 file of this process's cgroup (`max` and absent read as `None`).
fn cgroup_file(name: &str) -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|line| line.strip_prefix("0::"))?;
    let file = std::path::Path::new("/sys/fs/cgroup")
        .join(path.trim_start_matches('/'))
        .join(name);
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cores_and_a_budget() {
        let machine = this_machine(None);
        assert!(machine.cores >= 1);
        assert!(machine.memory_budget > 0);
        assert_eq!(this_machine(Some(3)).memory_budget, 3 << 20);
    }
}
