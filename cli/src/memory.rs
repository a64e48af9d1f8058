//! Resident memory, for both binaries. glibc's malloc keeps most of what model loading and
//! request buffers once used: its mmap threshold grows with every large free and each thread
//! gets an arena of its own, which doubled `destino-edge`'s resident memory and let a busy
//! server's creep. Its tunables are read only from the environment at start-up, so the binary
//! re-executes itself once with them set (same process id, arguments and environment
//! otherwise). A `GLIBC_TUNABLES` already in the environment is left alone: set it (even
//! empty) to opt out.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

/// Devices: buffers over 4 MiB (model tensors, large images) go straight to mmap and back to
/// the system when freed; one arena bounds per-thread caching. A lower threshold (256 KiB
/// before) sends every activation of a CNN to mmap, and the kernel zero-fills its pages on
/// every inference: EfficientNet-Lite0 served at 87 ms a request instead of 41, for 23 MB
/// less resident memory.
pub const DEVICE_TUNABLES: &str = "glibc.malloc.mmap_threshold=4194304:glibc.malloc.arena_max=1";

/// Hosts: one arena per core instead of glibc's eight, which bounds the memory each busy
/// thread keeps (a 1 M-request soak stays flat) while large buffers keep glibc's fast reuse
/// (a fixed mmap threshold cost about 8 % of large-tensor throughput).
pub fn host_tunables() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("glibc.malloc.arena_max={cores}")
}

/// Re-executes the process with `tunables` when running on glibc without any. Returns if
/// that is not needed or not possible, and the process goes on as is. `execve` itself, not
/// `execvp`: where the kernel cannot run this binary (under qemu-user without binfmt) it fails
/// instead of handing the file to `/bin/sh`.
pub fn tune_allocator(tunables: &str) {
    if !cfg!(all(target_os = "linux", target_env = "gnu"))
        || std::env::var_os("GLIBC_TUNABLES").is_some()
    {
        return;
    }
    if let Some((path, args, env)) = reexec_with_tunables(tunables) {
        // Only returns on failure.
        let _failed = nix::unistd::execve(&path, &args, &env);
    }
}

type ExecParts = (CString, Vec<CString>, Vec<CString>);

fn reexec_with_tunables(tunables: &str) -> Option<ExecParts> {
    let c_string = |bytes: &[u8]| CString::new(bytes).ok();
    let exe = std::env::current_exe().ok()?;
    let path = c_string(exe.as_os_str().as_bytes())?;
    let args = std::env::args_os()
        .map(|arg| c_string(arg.as_bytes()))
        .collect::<Option<Vec<_>>>()?;
    let mut env: Vec<CString> = std::env::vars_os()
        .filter_map(|(key, value)| {
            let mut pair = key.as_bytes().to_vec();
            pair.push(b'=');
            pair.extend_from_slice(value.as_bytes());
            c_string(&pair)
        })
        .collect();
    env.push(c_string(format!("GLIBC_TUNABLES={tunables}").as_bytes())?);
    Some((path, args, env))
}
