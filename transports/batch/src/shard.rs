//! `--shard I/N`: which parts of the input this process scores. Part `p` belongs to shard
//! `p % N`, so N processes given the same input and 0..N cover every part exactly once with no
//! coordinator. Without the flag a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX` and
//! `JOB_COMPLETIONS` say it.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Whether part `part` is this shard's.
    pub fn owns(self, part: usize) -> bool {
        part % self.count == self.index
    }

    /// The shard a Kubernetes Indexed Job gives this pod, if it is one.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>, String> {
        let (Some(index), Some(count)) =
            (lookup("JOB_COMPLETION_INDEX"), lookup("JOB_COMPLETIONS"))
        else {
            return Ok(None);
        };
        format!("{}/{}", index.trim(), count.trim())
            .parse()
            .map(Some)
            .map_err(|e| format!("JOB_COMPLETION_INDEX/JOB_COMPLETIONS: {e}"))
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not a shard: write I/N, e.g. 0/4"))?;
        let number = |part: &str| {
            part.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{text}` is not a shard: I and N are whole numbers"))
        };
        let shard = Shard {
            index: number(index)?,
            count: number(count)?,
        };
        if shard.count == 0 || shard.index >= shard.count {
            return Err(format!("`{text}` is not a shard: it needs 0 <= I < N"));
        }
        Ok(shard)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_split_parts_between_them() {
        let shard: Shard = "1/3".parse().unwrap();
        assert_eq!(shard, Shard { index: 1, count: 3 });
        let owned: Vec<usize> = (0..8).filter(|&p| shard.owns(p)).collect();
        assert_eq!(owned, [1, 4, 7]);
        for bad in ["3/3", "1/0", "x/2", "2", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert!((0..10).all(|p| Shard::WHOLE.owns(p)));
    }

    #[test]
    fn an_indexed_job_names_the_shard() {
        let env = |name: &str| match name {
            "JOB_COMPLETION_INDEX" => Some("2".to_string()),
            "JOB_COMPLETIONS" => Some("4".to_string()),
            _ => None,
        };
        assert_eq!(
            Shard::from_env(env).unwrap(),
            Some(Shard { index: 2, count: 4 })
        );
        assert_eq!(Shard::from_env(|_| None).unwrap(), None);
        let wrong = |name: &str| {
            (name == "JOB_COMPLETION_INDEX" || name == "JOB_COMPLETIONS").then(|| "5".to_string())
        };
        assert!(Shard::from_env(wrong).is_err());
    }
}
