//! Where the server looks for the ONNX Runtime library: the `--onnxruntime` flag alone when it
//! is given (a path the user names is never silently replaced), otherwise `ORT_DYLIB_PATH`,
//! the copy `scripts/fetch-onnxruntime` puts in the repository, the executable's folder, and
//! the system loader's search path, in that order.

use std::path::{Path, PathBuf};

/// The library file name the system loader searches for.
pub const LIBRARY: &str = "libonnxruntime.so";
/// Where `scripts/fetch-onnxruntime` installs the CPU library, relative to the repository.
pub const FETCHED: &str = ".onnxruntime/cpu/libonnxruntime.so";

/// Candidate library paths with where each comes from, in the order they are tried.
pub fn candidates(flag: Option<&Path>, env: Option<&str>) -> Vec<(PathBuf, &'static str)> {
    if let Some(path) = flag {
        return vec![(path.to_path_buf(), "--onnxruntime")];
    }
    let mut out = Vec::new();
    if let Some(path) = env.filter(|p| !p.is_empty()) {
        out.push((PathBuf::from(path), "ORT_DYLIB_PATH"));
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(FETCHED);
    out.push((repo, "the repository's fetched copy"));
    if let Ok(cwd) = std::env::current_dir() {
        out.push((
            cwd.join(FETCHED),
            "fetched copy under the working directory",
        ));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.push((dir.join(LIBRARY), "next to the executable"));
    }
    out.push((PathBuf::from(LIBRARY), "the system loader's search path"));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_alone_else_environment_then_fallbacks() {
        let list = candidates(Some(Path::new("/opt/ort/lib.so")), Some("/env/lib.so"));
        assert_eq!(
            list,
            vec![(PathBuf::from("/opt/ort/lib.so"), "--onnxruntime")]
        );
        let list = candidates(None, Some("/env/lib.so"));
        assert_eq!(list[0], (PathBuf::from("/env/lib.so"), "ORT_DYLIB_PATH"));
        assert_eq!(list.last().unwrap().0, PathBuf::from(LIBRARY));
        assert!(
            candidates(None, Some(""))
                .iter()
                .all(|(_, o)| *o != "ORT_DYLIB_PATH")
        );
    }
}
