//! tract panics on some models it should refuse (an out-of-bounds index, a division by zero in
//! a kernel). Every call into it goes through [`contained`], so a panic becomes an error that
//! names the stage, and never takes down a caller that has no `catch_unwind` of its own.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use destino_core::Result;

use crate::engine_error;

/// Runs `work`; a panic inside it becomes an engine error naming `stage`.
pub(crate) fn contained<T>(stage: &str, work: impl FnOnce() -> T) -> Result<T> {
    catch_unwind(AssertUnwindSafe(work)).map_err(|payload| {
        engine_error(format!(
            "tract panicked while {stage}: {}",
            panic_message(payload.as_ref())
        ))
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_naming_the_stage() {
        let err = contained("planning", || -> u8 { panic!("index out of bounds") }).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("tract panicked while planning: index out of bounds"),
            "{text}"
        );
        assert_eq!(contained("running", || 7).unwrap(), 7);
    }
}
