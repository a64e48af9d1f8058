//! Part files are committed atomically: written under a temporary name, flushed to disk, then
//! renamed into place (and the folder flushed), so a part file that exists is complete, and a
//! run killed at any point leaves at most a temporary file, which the next run removes.

use std::fs::File;
use std::io::Write as _;
use std::path::Path;

/// Writes `bytes` to `dir/name` atomically and durably.
pub fn commit(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = dir.join(temporary_name(name));
    let mut file = File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// The temporary name of `name` while this process writes it.
fn temporary_name(name: &str) -> String {
    format!(".{name}.{}.tmp", std::process::id())
}

/// Removes what killed runs left of `name` (its temporary files, any process's).
pub fn remove_leftovers(dir: &Path, name: &str) -> std::io::Result<()> {
    let prefix = format!(".{name}.");
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file = entry.file_name();
        let file = file.to_string_lossy();
        if file.starts_with(&prefix) && file.ends_with(".tmp") {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_committed_file_is_whole_and_leftovers_go() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".part-00001.jsonl.999.tmp"), "half").unwrap();
        std::fs::write(dir.path().join(".part-00002.jsonl.999.tmp"), "other").unwrap();
        remove_leftovers(dir.path(), "part-00001.jsonl").unwrap();
        commit(dir.path(), "part-00001.jsonl", b"{}\n").unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [".part-00002.jsonl.999.tmp", "part-00001.jsonl"]);
        let written = std::fs::read_to_string(dir.path().join("part-00001.jsonl")).unwrap();
        assert_eq!(written, "{}\n");
    }
}
