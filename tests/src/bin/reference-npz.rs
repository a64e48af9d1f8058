//! Writes every shared model's reference cases as `.npz` pairs, for the ARM binaries that
//! `scripts/cross-check` runs under qemu: `OUT/<model>[.<case>].inputs.npz` and
//! `.expected.npz`, and prints one line per case: `model case inputs expected`.

use std::path::PathBuf;
use std::process::ExitCode;

use destino_core::npz::write_npz;
use destino_tests::{reference_cases, shared_models};

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: reference-npz OUT_DIR");
        return ExitCode::FAILURE;
    };
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("cannot create {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    for (model, case) in reference_cases() {
        let reference = destino_tests::reference_case(&model, case.as_deref());
        let stem = match &case {
            Some(case) => format!("{model}.{case}"),
            None => model.clone(),
        };
        let inputs = out.join(format!("{stem}.inputs.npz"));
        let expected = out.join(format!("{stem}.expected.npz"));
        if let Err(e) = write_npz(&inputs, &reference.inputs)
            .and_then(|()| write_npz(&expected, &reference.expected))
        {
            eprintln!("{stem}: {e}");
            return ExitCode::FAILURE;
        }
        println!(
            "{} {} {} {}",
            shared_models().join(format!("{model}.onnx")).display(),
            case.as_deref().unwrap_or("-"),
            inputs.display(),
            expected.display()
        );
    }
    ExitCode::SUCCESS
}
