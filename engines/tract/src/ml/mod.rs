//! The `ai.onnx.ml` operators destino computes for tract, registered in every parser
//! (`facts.rs`): tract lacks most of them, and its `TreeEnsembleClassifier` re-reads the
//! whole leaf table per tree and misreads `BRANCH_GTE` nodes.

mod kernel;
mod parse;
mod preprocess;
mod svm;
mod tree;
mod trees;

use tract_onnx::model::OnnxOpRegister;

/// Registers destino's operators, replacing tract's where both exist.
pub fn register(ops: &mut OnnxOpRegister) {
    ops.insert("TreeEnsembleClassifier", parse::classifier);
    ops.insert("TreeEnsembleRegressor", parse::regressor);
    ops.insert("TreeEnsemble", parse::ensemble);
    ops.insert("Binarizer", preprocess::binarizer);
    ops.insert("Scaler", preprocess::scaler);
    ops.insert("Imputer", preprocess::imputer);
    ops.insert("LabelEncoder", preprocess::label_encoder);
    ops.insert("OneHotEncoder", preprocess::one_hot_encoder);
    ops.insert("FeatureVectorizer", preprocess::feature_vectorizer);
    ops.insert("ZipMap", preprocess::zipmap);
    ops.insert("SVMClassifier", svm::classifier);
    ops.insert("SVMRegressor", svm::regressor);
}
