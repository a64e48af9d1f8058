//! Tree ensembles flattened once at load: every node of every tree in one contiguous array,
//! children as indices, comparisons resolved per node, leaf weights in one array. A row
//! walks each tree from its root; nothing is looked up by id at run time.
//!
//! The aggregation and the post-transforms follow the `ai.onnx.ml` specification and, where
//! it is vague (two classes, one score), ONNX Runtime's behaviour, so both engines agree.

use std::collections::HashMap;

/// How a split compares the feature `x` with its threshold `t`; true takes the true branch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cmp {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    /// `x` is one of a set (opset-5 `TreeEnsemble`): the index of the set.
    Member(u32),
}

impl Cmp {
    /// The mode as the `ai.onnx.ml` v1/v3 operators spell it; `None` for `LEAF`.
    pub fn parse(mode: &str) -> Result<Option<Cmp>, String> {
        Ok(Some(match mode {
            "BRANCH_LEQ" => Cmp::Leq,
            "BRANCH_LT" => Cmp::Lt,
            "BRANCH_GTE" => Cmp::Gte,
            "BRANCH_GT" => Cmp::Gt,
            "BRANCH_EQ" => Cmp::Eq,
            "BRANCH_NEQ" => Cmp::Neq,
            "LEAF" => return Ok(None),
            other => return Err(format!("unknown node mode `{other}`")),
        }))
    }
}

/// One flattened node: a split, or a leaf whose weights are `weights[first..first + count]`.
#[derive(Debug, Clone, Copy)]
enum Node {
    Split {
        feature: u32,
        threshold: f64,
        cmp: Cmp,
        missing_goes_true: bool,
        if_true: u32,
        if_false: u32,
    },
    Leaf {
        first: u32,
        count: u32,
    },
}

/// How the trees' leaf weights for one target combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

impl Aggregate {
    pub fn parse(name: &str) -> Result<Aggregate, String> {
        match name {
            "SUM" => Ok(Aggregate::Sum),
            "AVERAGE" => Ok(Aggregate::Average),
            "MIN" => Ok(Aggregate::Min),
            "MAX" => Ok(Aggregate::Max),
            other => Err(format!("unknown aggregate function `{other}`")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

impl PostTransform {
    pub fn parse(name: &str) -> Result<PostTransform, String> {
        match name {
            "NONE" => Ok(PostTransform::None),
            "LOGISTIC" => Ok(PostTransform::Logistic),
            "SOFTMAX" => Ok(PostTransform::Softmax),
            "SOFTMAX_ZERO" => Ok(PostTransform::SoftmaxZero),
            "PROBIT" => Ok(PostTransform::Probit),
            other => Err(format!("unknown post transform `{other}`")),
        }
    }
}

/// A node as the ONNX attributes list it, before flattening.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub tree: i64,
    pub id: i64,
    pub feature: i64,
    pub threshold: f64,
    /// `None` for a leaf.
    pub cmp: Option<Cmp>,
    pub missing_goes_true: bool,
    pub if_true: i64,
    pub if_false: i64,
}

/// One weight of a leaf: (tree, node) it belongs to, the target or class, the value.
#[derive(Debug, Clone, Copy)]
pub struct WeightSpec {
    pub tree: i64,
    pub node: i64,
    pub target: i64,
    pub value: f64,
}

/// The trees, flattened.
#[derive(Debug, Clone)]
pub struct Forest {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    weights: Vec<(u32, f64)>,
    sets: Vec<Vec<f64>>,
    /// Columns a row must have (the largest feature index used, plus one).
    pub features: usize,
    pub targets: usize,
}

impl Forest {
    /// Flattens the v1/v3 attribute lists (nodes keyed by (tree id, node id)).
    pub fn from_specs(
        nodes: &[NodeSpec],
        weights: &[WeightSpec],
        targets: usize,
    ) -> Result<Forest, String> {
        let index: HashMap<(i64, i64), u32> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                Ok((
                    (n.tree, n.id),
                    u32::try_from(i).map_err(|_| "too many nodes")?,
                ))
            })
            .collect::<Result<_, String>>()?;
        if index.len() != nodes.len() {
            return Err("a (tree, node) id appears twice".into());
        }
        let mut by_leaf: HashMap<(i64, i64), Vec<(u32, f64)>> = HashMap::new();
        for w in weights {
            let target = u32::try_from(w.target)
                .ok()
                .filter(|&t| (t as usize) < targets)
                .ok_or_else(|| format!("weight for target {} of {targets}", w.target))?;
            by_leaf
                .entry((w.tree, w.node))
                .or_default()
                .push((target, w.value));
        }
        let child = |tree: i64, id: i64| {
            index
                .get(&(tree, id))
                .copied()
                .ok_or_else(|| format!("tree {tree} has no node {id}"))
        };
        let mut flat = Vec::with_capacity(nodes.len());
        let mut flat_weights = Vec::new();
        let mut is_child = vec![false; nodes.len()];
        let mut features = 0usize;
        for n in nodes {
            flat.push(match n.cmp {
                None => {
                    let leaf = by_leaf.remove(&(n.tree, n.id)).unwrap_or_default();
                    let first =
                        u32::try_from(flat_weights.len()).map_err(|_| "too many weights")?;
                    flat_weights.extend(leaf.iter().copied());
                    Node::Leaf {
                        first,
                        count: leaf.len() as u32,
                    }
                }
                Some(cmp) => {
                    let feature =
                        u32::try_from(n.feature).map_err(|_| format!("feature {}", n.feature))?;
                    features = features.max(feature as usize + 1);
                    let (if_true, if_false) =
                        (child(n.tree, n.if_true)?, child(n.tree, n.if_false)?);
                    is_child[if_true as usize] = true;
                    is_child[if_false as usize] = true;
                    Node::Split {
                        feature,
                        threshold: n.threshold,
                        cmp,
                        missing_goes_true: n.missing_goes_true,
                        if_true,
                        if_false,
                    }
                }
            });
        }
        // A tree's root is its one node that is nobody's child, in order of tree appearance.
        let mut roots = Vec::new();
        let mut seen_trees = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            if !is_child[i] && !seen_trees.contains(&n.tree) {
                seen_trees.push(n.tree);
                roots.push(i as u32);
            }
        }
        let forest = Forest {
            nodes: flat,
            roots,
            weights: flat_weights,
            sets: Vec::new(),
            features,
            targets,
        };
        forest.check_acyclic()?;
        Ok(forest)
    }

    /// Flattens the opset-5 `TreeEnsemble` layout: nodes by position, leaves apart.
    #[allow(clippy::too_many_arguments)]
    pub fn from_v5(
        splits: &[(u32, f64, Cmp, bool)],
        true_children: &[(bool, u32)],
        false_children: &[(bool, u32)],
        leaves: &[(u32, f64)],
        tree_roots: &[u32],
        sets: Vec<Vec<f64>>,
        targets: usize,
    ) -> Result<Forest, String> {
        let n = splits.len();
        let leaf_base = u32::try_from(n).map_err(|_| "too many nodes")?;
        let mut nodes = Vec::with_capacity(n + leaves.len());
        let mut features = 0usize;
        let at = |(is_leaf, i): (bool, u32), limit: usize| {
            if (i as usize) < limit {
                Ok(if is_leaf { leaf_base + i } else { i })
            } else {
                Err(format!("child {i} out of range"))
            }
        };
        for (k, &(feature, threshold, cmp, missing_goes_true)) in splits.iter().enumerate() {
            features = features.max(feature as usize + 1);
            let limit = |c: (bool, u32)| if c.0 { leaves.len() } else { n };
            nodes.push(Node::Split {
                feature,
                threshold,
                cmp,
                missing_goes_true,
                if_true: at(true_children[k], limit(true_children[k]))?,
                if_false: at(false_children[k], limit(false_children[k]))?,
            });
        }
        let mut weights = Vec::with_capacity(leaves.len());
        for (i, &(target, value)) in leaves.iter().enumerate() {
            if target as usize >= targets {
                return Err(format!("leaf target {target} of {targets}"));
            }
            weights.push((target, value));
            nodes.push(Node::Leaf {
                first: i as u32,
                count: 1,
            });
        }
        if let Some(root) = tree_roots.iter().find(|&&r| r as usize >= n) {
            return Err(format!("tree root {root} out of range"));
        }
        let forest = Forest {
            nodes,
            roots: tree_roots.to_vec(),
            weights,
            sets,
            features,
            targets,
        };
        forest.check_acyclic()?;
        Ok(forest)
    }

    /// Every walk ends: no node is its own descendant (a three-colour depth-first search).
    fn check_acyclic(&self) -> Result<(), String> {
        const OPEN: u8 = 1;
        const DONE: u8 = 2;
        let mut state = vec![0u8; self.nodes.len()];
        for &root in &self.roots {
            if state[root as usize] == DONE {
                continue;
            }
            // (node, children already pushed)
            let mut stack = vec![(root, false)];
            while let Some((i, expanded)) = stack.pop() {
                let i = i as usize;
                if expanded {
                    state[i] = DONE;
                    continue;
                }
                match state[i] {
                    DONE => continue,
                    OPEN => return Err("a tree has a cycle".into()),
                    _ => {}
                }
                state[i] = OPEN;
                stack.push((i as u32, true));
                if let Node::Split {
                    if_true, if_false, ..
                } = self.nodes[i]
                {
                    for child in [if_true, if_false] {
                        match state[child as usize] {
                            OPEN => return Err("a tree has a cycle".into()),
                            DONE => {}
                            _ => stack.push((child, false)),
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub fn trees(&self) -> usize {
        self.roots.len()
    }

    /// Adds each tree's leaf for `row` into `scores`/`has` by `aggregate` (before averaging).
    pub fn accumulate(
        &self,
        row: &[f64],
        aggregate: Aggregate,
        scores: &mut [f64],
        has: &mut [bool],
    ) {
        for &root in &self.roots {
            let mut i = root as usize;
            let (first, count) = loop {
                match self.nodes[i] {
                    Node::Leaf { first, count } => break (first as usize, count as usize),
                    Node::Split {
                        feature,
                        threshold,
                        cmp,
                        missing_goes_true,
                        if_true,
                        if_false,
                    } => {
                        let x = row[feature as usize];
                        let go = if x.is_nan() && missing_goes_true {
                            true
                        } else {
                            match cmp {
                                Cmp::Leq => x <= threshold,
                                Cmp::Lt => x < threshold,
                                Cmp::Gte => x >= threshold,
                                Cmp::Gt => x > threshold,
                                Cmp::Eq => x == threshold,
                                Cmp::Neq => x != threshold,
                                Cmp::Member(set) => self.sets[set as usize].contains(&x),
                            }
                        };
                        i = if go { if_true } else { if_false } as usize;
                    }
                }
            };
            for &(target, value) in &self.weights[first..first + count] {
                let (s, h) = (&mut scores[target as usize], &mut has[target as usize]);
                *s = match aggregate {
                    Aggregate::Sum | Aggregate::Average => *s + value,
                    Aggregate::Min if *h => s.min(value),
                    Aggregate::Max if *h => s.max(value),
                    Aggregate::Min | Aggregate::Max => value,
                };
                *h = true;
            }
        }
    }
}

/// The logistic function, stable for large |x|.
pub fn logistic(x: f64) -> f64 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 { 1.0 - v } else { v }
}

/// √2 · erf⁻¹(2x − 1), with Giles' single-precision approximation of erf⁻¹.
pub fn probit(x: f64) -> f64 {
    let y = 2.0 * x - 1.0;
    let w = -((1.0 - y) * (1.0 + y)).ln();
    let inv = if w < 5.0 {
        let w = w - 2.5;
        let mut p = 2.810_226_36e-08;
        for c in [
            3.432_739_39e-07,
            -3.523_387_7e-06,
            -4.391_506_54e-06,
            0.000_218_580_87,
            -0.001_253_725_03,
            -0.004_177_681_64,
            0.246_640_727,
            1.501_409_41,
        ] {
            p = c + p * w;
        }
        p * y
    } else {
        let w = w.sqrt() - 3.0;
        let mut p = -0.000_200_214_257;
        for c in [
            0.000_100_950_558,
            0.001_349_343_22,
            -0.003_673_428_44,
            0.005_739_507_73,
            -0.007_622_461_3,
            0.009_438_870_47,
            1.001_674_06,
            2.832_976_82,
        ] {
            p = c + p * w;
        }
        p * y
    };
    std::f64::consts::SQRT_2 * inv
}

/// Applies `transform` to one row's scores (two or more of them).
pub fn transform_row(scores: &mut [f64], transform: PostTransform) {
    match transform {
        PostTransform::None => {}
        PostTransform::Logistic => scores.iter_mut().for_each(|s| *s = logistic(*s)),
        PostTransform::Probit => scores.iter_mut().for_each(|s| *s = probit(*s)),
        PostTransform::Softmax => {
            let max = scores.iter().copied().fold(f64::MIN, f64::max);
            let sum: f64 = scores
                .iter_mut()
                .map(|s| {
                    *s = (*s - max).exp();
                    *s
                })
                .sum();
            scores.iter_mut().for_each(|s| *s /= sum);
        }
        PostTransform::SoftmaxZero => {
            let max = scores.iter().copied().fold(f64::MIN, f64::max);
            let mut sum = 0.0;
            for s in scores.iter_mut() {
                if s.abs() > 1e-7 {
                    *s = (*s - max).exp();
                    sum += *s;
                } else {
                    *s *= (-max).exp();
                }
            }
            scores.iter_mut().for_each(|s| *s /= sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(
        tree: i64,
        id: i64,
        feature: i64,
        threshold: f64,
        cmp: Cmp,
        t: i64,
        f: i64,
    ) -> NodeSpec {
        NodeSpec {
            tree,
            id,
            feature,
            threshold,
            cmp: Some(cmp),
            missing_goes_true: false,
            if_true: t,
            if_false: f,
        }
    }

    fn leaf(tree: i64, id: i64) -> NodeSpec {
        NodeSpec {
            tree,
            id,
            feature: 0,
            threshold: 0.0,
            cmp: None,
            missing_goes_true: false,
            if_true: 0,
            if_false: 0,
        }
    }

    fn weight(tree: i64, node: i64, value: f64) -> WeightSpec {
        WeightSpec {
            tree,
            node,
            target: 0,
            value,
        }
    }

    fn score(forest: &Forest, row: &[f64]) -> f64 {
        let (mut scores, mut has) = (vec![0.0], vec![false]);
        forest.accumulate(row, Aggregate::Sum, &mut scores, &mut has);
        scores[0]
    }

    #[test]
    fn every_comparison_takes_the_branch_the_specification_says() {
        // Tree 0: x0 >= 2 ? (x1 == 5 ? 1 : 2) : 3. Tree 1: x1 != 5 ? 10 : (x0 > 2 ? 20 : 30).
        let mut nodes = vec![
            split(0, 0, 0, 2.0, Cmp::Gte, 1, 2),
            split(0, 1, 1, 5.0, Cmp::Eq, 3, 4),
            leaf(0, 2),
            leaf(0, 3),
            leaf(0, 4),
            split(1, 0, 1, 5.0, Cmp::Neq, 1, 2),
            leaf(1, 1),
            split(1, 2, 0, 2.0, Cmp::Gt, 3, 4),
            leaf(1, 3),
            leaf(1, 4),
        ];
        let weights = [
            weight(0, 2, 3.0),
            weight(0, 3, 1.0),
            weight(0, 4, 2.0),
            weight(1, 1, 10.0),
            weight(1, 3, 20.0),
            weight(1, 4, 30.0),
        ];
        let forest = Forest::from_specs(&nodes, &weights, 1).unwrap();
        assert_eq!(forest.trees(), 2);
        assert_eq!(score(&forest, &[2.0, 5.0]), 1.0 + 30.0); // 2 >= 2, 5 == 5; not 2 > 2
        assert_eq!(score(&forest, &[3.0, 5.0]), 1.0 + 20.0);
        assert_eq!(score(&forest, &[1.0, 4.0]), 3.0 + 10.0);
        assert_eq!(score(&forest, &[2.0, 4.0]), 2.0 + 10.0);
        // NaN fails every comparison but NEQ, unless the node sends missing values true.
        assert_eq!(score(&forest, &[f64::NAN, 5.0]), 3.0 + 30.0);
        nodes[0].missing_goes_true = true;
        let forest = Forest::from_specs(&nodes, &weights, 1).unwrap();
        assert_eq!(score(&forest, &[f64::NAN, 5.0]), 1.0 + 30.0);
    }

    #[test]
    fn malformed_trees_are_refused() {
        let looping = [
            split(0, 0, 0, 1.0, Cmp::Leq, 1, 2),
            split(0, 1, 0, 1.0, Cmp::Leq, 1, 2),
            leaf(0, 2),
        ];
        assert!(
            Forest::from_specs(&looping, &[], 1)
                .unwrap_err()
                .contains("cycle")
        );
        let dangling = [split(0, 0, 0, 1.0, Cmp::Leq, 1, 7), leaf(0, 1)];
        assert!(
            Forest::from_specs(&dangling, &[], 1)
                .unwrap_err()
                .contains("no node 7")
        );
        assert!(Forest::from_specs(&[leaf(0, 0)], &[weight(0, 0, 1.0)], 0).is_err());
    }

    #[test]
    fn aggregates_and_transforms() {
        let nodes = [leaf(0, 0), leaf(1, 0)];
        let forest =
            Forest::from_specs(&nodes, &[weight(0, 0, 1.0), weight(1, 0, 3.0)], 1).unwrap();
        for (aggregate, want) in [
            (Aggregate::Sum, 4.0),
            (Aggregate::Min, 1.0),
            (Aggregate::Max, 3.0),
        ] {
            let (mut s, mut h) = (vec![0.0], vec![false]);
            forest.accumulate(&[0.0], aggregate, &mut s, &mut h);
            assert_eq!(s[0], want, "{aggregate:?}");
        }
        let mut row = [1.0, 2.0, 3.0];
        transform_row(&mut row, PostTransform::Softmax);
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12 && row[2] > row[1]);
        assert!((logistic(0.0) - 0.5).abs() < 1e-12 && logistic(-40.0) < 1e-17);
        assert!(probit(0.5).abs() < 1e-6 && (probit(0.975) - 1.959_964).abs() < 1e-3);
    }
}
