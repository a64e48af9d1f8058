//! A test hook, in debug builds only: `DESTINO_TEST_UPDATE_STALL=STEP` stops every update at
//! STEP (`downloading`: after its first MiB; `verifying`; `loading`: once installed;
//! `committing`: after the swap, before the staging folder is cleared) and prints
//! `update: stalled at STEP`, so a test can kill the process there. Release builds ignore it.

/// Stops here forever when the hook names `step`.
pub fn at(step: &str) {
    if cfg!(debug_assertions)
        && std::env::var("DESTINO_TEST_UPDATE_STALL").is_ok_and(|wanted| wanted == step)
    {
        println!("update: stalled at {step}");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// The `downloading` stop, once `written` bytes passed the first MiB.
pub fn at_download(written: u64) {
    if cfg!(debug_assertions) && written >= 1 << 20 {
        at("downloading");
    }
}
