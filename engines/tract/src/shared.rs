//! One planner per model file and engine configuration, shared by the model's instances: the
//! parsed graph and every plan (with its packed weights) exist once however many instances
//! serve, and a shape one instance has planned is planned for all.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use destino_core::repository::FileStamp;
use destino_core::{Device, EngineConfig, Result};

use crate::planner::Planner;

pub(crate) type SharedPlanner = Arc<Mutex<Planner>>;

/// A model file as it is now (a changed file, a hot swap, shares nothing with the old one),
/// and what of the configuration shapes its plans.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    path: PathBuf,
    stamp: Option<FileStamp>,
    threads: usize,
    low_memory: bool,
    device: Device,
    require_device: bool,
}

impl Key {
    fn of(path: &Path, config: &EngineConfig) -> Key {
        Key {
            path: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
            stamp: FileStamp::of(path),
            threads: config.threads,
            low_memory: config.low_memory,
            device: config.device,
            require_device: config.require_device,
        }
    }
}

/// Planners in use; an entry dies with the last instance of its model.
static PLANNERS: Mutex<Vec<(Key, Weak<Mutex<Planner>>)>> = Mutex::new(Vec::new());

fn planners() -> MutexGuard<'static, Vec<(Key, Weak<Mutex<Planner>>)>> {
    PLANNERS.lock().unwrap_or_else(PoisonError::into_inner)
}

fn find(planners: &mut Vec<(Key, Weak<Mutex<Planner>>)>, key: &Key) -> Option<SharedPlanner> {
    planners.retain(|(_, planner)| planner.strong_count() > 0);
    planners
        .iter()
        .filter(|(k, _)| k == key)
        .find_map(|(_, planner)| planner.upgrade())
}

/// The planner of `path` under `config`: the one its other instances use, or a new one
/// (loaded without holding the table, so other models load meanwhile).
pub(crate) fn planner(path: &Path, config: &EngineConfig) -> Result<SharedPlanner> {
    let key = Key::of(path, config);
    if let Some(planner) = find(&mut planners(), &key) {
        return Ok(planner);
    }
    let loaded = Arc::new(Mutex::new(Planner::load(path, config)?));
    let mut planners = planners();
    if let Some(planner) = find(&mut planners, &key) {
        return Ok(planner);
    }
    planners.push((key, Arc::downgrade(&loaded)));
    Ok(loaded)
}

/// The planner, also after a panic elsewhere while it was held (planning contains tract's
/// panics, so its state stays consistent).
pub(crate) fn lock(planner: &Mutex<Planner>) -> MutexGuard<'_, Planner> {
    planner.lock().unwrap_or_else(PoisonError::into_inner)
}
