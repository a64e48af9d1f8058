//! Which of the file's own facts tract plans with. Declared output shapes and `value_info`
//! type the operators whose axes or sizes arrive as inputs (`Reshape`, `Resize`, `Split`,
//! `Reduce*`), but exporters sometimes get them wrong (a batch fixed at 1): plan with all of
//! them first and, when analysis fails, with fewer, as tract's command-line tool does.

use tract_onnx::Onnx;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Facts {
    /// Declared output shapes and types, and `value_info`.
    Declared,
    /// `value_info` only (tract's library default).
    ValueInfo,
    /// Neither: tract infers everything from the inputs.
    Bare,
}

impl Facts {
    /// The ONNX parser reading the file with these facts; the one constructor every parse uses.
    pub fn parser(self) -> Onnx {
        let mut onnx = tract_onnx::onnx();
        crate::ml::register(&mut onnx.op_register);
        onnx.op_register.insert("Gather", crate::gather::parse);
        match self {
            Facts::Declared => onnx.with_ignore_output_shapes(false),
            Facts::ValueInfo => onnx,
            Facts::Bare => onnx.with_ignore_value_info(true),
        }
    }

    /// The next, less constrained, set to try.
    pub fn next(self) -> Option<Facts> {
        match self {
            Facts::Declared => Some(Facts::ValueInfo),
            Facts::ValueInfo => Some(Facts::Bare),
            Facts::Bare => None,
        }
    }

    /// For `inspect`.
    pub fn describe(self) -> &'static str {
        match self {
            Facts::Declared => "planned with the file's declared output shapes and value_info",
            Facts::ValueInfo => {
                "planned with the file's value_info; its declared output shapes were dropped \
                 (analysis failed with them)"
            }
            Facts::Bare => {
                "planned without the file's declared output shapes and value_info (analysis \
                 failed with them)"
            }
        }
    }
}
