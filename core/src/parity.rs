//! Output comparison: between engines, and against reference outputs.

use std::fmt;

use crate::metadata::Tensors;
use crate::tensor::{Tensor, TensorData};

/// numpy `allclose` tolerance: `|actual - expected| <= atol + rtol * |expected|`. Integer,
/// bool and string outputs must match exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    pub atol: f64,
    pub rtol: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            atol: 1e-4,
            rtol: 1e-3,
        }
    }
}

/// How one output compares.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub name: String,
    pub max_abs: f64,
    pub max_rel: f64,
    pub within: bool,
    /// Why the outputs are not comparable element by element, when they are not.
    pub problem: Option<String>,
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.within { "ok" } else { "MISMATCH" };
        match &self.problem {
            Some(problem) => write!(f, "{}: {verdict}: {problem}", self.name),
            None => write!(
                f,
                "{}: {verdict}: max abs diff {:.3e}, max rel diff {:.3e}",
                self.name, self.max_abs, self.max_rel
            ),
        }
    }
}

/// Compares `actual` with `expected` element by element.
pub fn compare(name: &str, actual: &Tensor, expected: &Tensor, tolerance: Tolerance) -> Comparison {
    let mismatch = |problem: String| Comparison {
        name: name.to_string(),
        max_abs: f64::INFINITY,
        max_rel: f64::INFINITY,
        within: false,
        problem: Some(problem),
    };
    if actual.shape() != expected.shape() {
        return mismatch(format!(
            "shape {:?} vs expected {:?}",
            actual.shape(),
            expected.shape()
        ));
    }
    if actual.dtype() != expected.dtype() {
        return mismatch(format!(
            "dtype {} vs expected {}",
            actual.dtype(),
            expected.dtype()
        ));
    }
    if let (TensorData::String(a), TensorData::String(e)) = (actual.data(), expected.data()) {
        let differing = a.iter().zip(e).filter(|(x, y)| x != y).count();
        return Comparison {
            name: name.to_string(),
            max_abs: 0.0,
            max_rel: 0.0,
            within: differing == 0,
            problem: (differing > 0).then(|| format!("{differing} strings differ")),
        };
    }
    let (Some(a), Some(e)) = (actual.data().to_f64_vec(), expected.data().to_f64_vec()) else {
        return mismatch("not comparable".into());
    };
    let exact = !actual.dtype().is_float();
    let (mut max_abs, mut max_rel, mut within) = (0f64, 0f64, true);
    for (&x, &y) in a.iter().zip(&e) {
        if x.is_nan() || y.is_nan() {
            within &= x.is_nan() && y.is_nan();
            continue;
        }
        if x == y {
            continue; // also covers equal infinities
        }
        let diff = (x - y).abs();
        max_abs = max_abs.max(diff);
        if y != 0.0 {
            max_rel = max_rel.max(diff / y.abs());
        }
        within &= !exact && diff <= tolerance.atol + tolerance.rtol * y.abs();
    }
    Comparison {
        name: name.to_string(),
        max_abs,
        max_rel,
        within,
        problem: None,
    }
}

/// Compares every output in `expected` with the same-named one in `actual`.
pub fn compare_all(actual: &Tensors, expected: &Tensors, tolerance: Tolerance) -> Vec<Comparison> {
    expected
        .iter()
        .map(|(name, e)| match actual.get(name) {
            Some(a) => compare(name, a, e, tolerance),
            None => Comparison {
                name: name.clone(),
                max_abs: f64::INFINITY,
                max_rel: f64::INFINITY,
                within: false,
                problem: Some("missing from the outputs".into()),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(v: Vec<f32>) -> Tensor {
        Tensor::new(vec![v.len()], v).unwrap()
    }

    #[test]
    fn float_tolerance_is_allclose() {
        let t = Tolerance::default();
        assert!(compare("x", &f32s(vec![1.0005, 0.0]), &f32s(vec![1.0, 0.00005]), t).within);
        let c = compare("x", &f32s(vec![1.01]), &f32s(vec![1.0]), t);
        assert!(!c.within);
        assert!((c.max_abs - 0.01).abs() < 1e-6, "{c}");
        assert!(compare("x", &f32s(vec![f32::NAN]), &f32s(vec![f32::NAN]), t).within);
        assert!(!compare("x", &f32s(vec![f32::NAN]), &f32s(vec![1.0]), t).within);
    }

    #[test]
    fn integers_and_shapes_must_match_exactly() {
        let t = Tolerance {
            atol: 10.0,
            rtol: 10.0,
        };
        let a = Tensor::new(vec![2], vec![1i64, 2]).unwrap();
        let b = Tensor::new(vec![2], vec![1i64, 3]).unwrap();
        assert!(!compare("l", &a, &b, t).within);
        assert!(compare("l", &a, &a, t).within);
        let reshaped = Tensor::new(vec![1, 2], vec![1i64, 2]).unwrap();
        assert!(
            compare("l", &a, &reshaped, t)
                .problem
                .unwrap()
                .contains("shape")
        );
        let mut expected = Tensors::new();
        expected.insert("gone".into(), a);
        assert!(!compare_all(&Tensors::new(), &expected, t)[0].within);
    }
}
