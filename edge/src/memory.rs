//! Resident memory on devices. glibc's malloc keeps most of what model loading and request
//! buffers once used: its mmap threshold grows with every large free and each thread gets an
//! arena of its own, which doubled `destino-edge`'s resident memory. Its tunables are read
//! only from the environment at start-up, so the binary re-executes itself once with them set
//! (same process id, arguments and environment otherwise). A `GLIBC_TUNABLES` already in the
//! environment is left alone: set it (even empty) to opt out.

/// Large buffers (model tensors, images, activations) go straight to mmap and back to the
/// system when freed; two arenas bound per-thread caching.
pub const TUNABLES: &str = "glibc.malloc.mmap_threshold=262144:glibc.malloc.arena_max=2";

/// Re-executes the process with [`TUNABLES`] when running on glibc without them. Returns if
/// that is not needed or not possible (e.g. under qemu-user), and the process goes on as is.
pub fn tune_allocator() {
    if !cfg!(all(target_os = "linux", target_env = "gnu"))
        || std::env::var_os("GLIBC_TUNABLES").is_some()
    {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        std::os::unix::process::CommandExt::arg0(&mut command, arg0);
    }
    command.args(args).env("GLIBC_TUNABLES", TUNABLES);
    // `exec` only returns on failure; the process then goes on with glibc's defaults.
    let _failed = std::os::unix::process::CommandExt::exec(&mut command);
}
