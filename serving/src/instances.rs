//! How many engine instances serve a model when neither `--instances` nor `model.toml`
//! says: enough for concurrent clients to use every core, within a memory budget. A lone
//! client still gets one instance's latency: instances run side by side, never split a
//! request.

/// The machine the instances share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    /// Cores this process may use (CPU quota and affinity applied).
    pub cores: usize,
    /// Bytes of memory the instances of one model may take, together.
    pub memory_budget: u64,
}

/// Engine instances per model: a fixed count, or chosen from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instances {
    Fixed(usize),
    Auto(Machine),
}

impl Instances {
    /// The count for a model whose file is `model_bytes` long, each instance running on
    /// `threads` threads (`on_gpu`: one instance, since they would share one device).
    ///
    /// Auto: `cores / threads`, at most as many as fit the budget at the model file's size
    /// each (its weights, the bulk of an instance), and at least one.
    pub fn count(&self, model_bytes: u64, threads: usize, on_gpu: bool) -> usize {
        match *self {
            Instances::Fixed(n) => n.max(1),
            Instances::Auto(_) if on_gpu => 1,
            Instances::Auto(machine) => {
                let by_cores = machine.cores / threads.max(1);
                let by_memory = machine.memory_budget / model_bytes.max(1);
                by_cores
                    .min(usize::try_from(by_memory).unwrap_or(usize::MAX))
                    .max(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    fn auto(cores: usize, memory_budget: u64) -> Instances {
        Instances::Auto(Machine {
            cores,
            memory_budget,
        })
    }

    #[test]
    fn one_instance_per_core_group() {
        assert_eq!(auto(2, 1024 * MB).count(20 * MB, 1, false), 2);
        assert_eq!(auto(16, 1024 * MB).count(20 * MB, 4, false), 4);
        assert_eq!(auto(3, 1024 * MB).count(20 * MB, 2, false), 1);
        assert_eq!(auto(1, 1024 * MB).count(20 * MB, 8, false), 1);
    }

    #[test]
    fn memory_caps_the_count_but_never_below_one() {
        assert_eq!(auto(16, 100 * MB).count(30 * MB, 1, false), 3);
        assert_eq!(auto(16, 10 * MB).count(300 * MB, 1, false), 1);
        assert_eq!(auto(16, 10 * MB).count(0, 1, false), 16);
    }

    #[test]
    fn fixed_counts_and_gpus() {
        assert_eq!(Instances::Fixed(3).count(MB, 1, false), 3);
        assert_eq!(Instances::Fixed(0).count(MB, 1, false), 1);
        assert_eq!(auto(16, 1024 * MB).count(MB, 1, true), 1);
        assert_eq!(Instances::Fixed(2).count(MB, 1, true), 2);
    }
}
