//! Topic templates: where the answer to a message goes, derived from the topic it came on.

/// A topic with placeholders filled from the input topic:
/// `{topic}` the whole input topic, `{parent}` all but its last level, `{1}`, `{2}`, … the
/// levels matched by the subscription's `+` wildcards in order, `{#}` what `#` matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate(pub String);

impl TopicTemplate {
    /// The output topic for a message on `topic`, received through `filter`.
    pub fn render(&self, filter: &str, topic: &str) -> String {
        let parent = topic.rsplit_once('/').map_or("", |(parent, _)| parent);
        let (singles, rest) = wildcard_matches(filter, topic);
        let mut out = self
            .0
            .replace("{topic}", topic)
            .replace("{parent}", parent)
            .replace("{#}", &rest.unwrap_or_default());
        for (i, level) in singles.iter().enumerate() {
            out = out.replace(&format!("{{{}}}", i + 1), level);
        }
        out
    }
}

/// Whether `topic` matches the subscription `filter` (MQTT wildcard rules).
pub fn matches(filter: &str, topic: &str) -> bool {
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        match level {
            "#" => return true,
            "+" => {
                if topic_levels.next().is_none() {
                    return false;
                }
            }
            literal => {
                if topic_levels.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    topic_levels.next().is_none()
}

/// The levels `+` matched, and what `#` matched, when `topic` matches `filter`.
fn wildcard_matches<'a>(filter: &str, topic: &'a str) -> (Vec<&'a str>, Option<String>) {
    let levels: Vec<&str> = topic.split('/').collect();
    let mut singles = Vec::new();
    for (i, level) in filter.split('/').enumerate() {
        match level {
            "#" => return (singles, Some(levels.get(i..).unwrap_or(&[]).join("/"))),
            "+" => singles.extend(levels.get(i)),
            _ => {}
        }
    }
    (singles, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_from_the_input_topic() {
        let filter = "devices/+/frames";
        let topic = "devices/cam-7/frames";
        let t = |s: &str| TopicTemplate(s.into()).render(filter, topic);
        assert_eq!(t("{parent}/predictions"), "devices/cam-7/predictions");
        assert_eq!(t("out/{1}"), "out/cam-7");
        assert_eq!(t("{topic}/result"), "devices/cam-7/frames/result");
        assert_eq!(
            TopicTemplate("results/{#}".into()).render("in/#", "in/a/b"),
            "results/a/b"
        );
    }

    #[test]
    fn wildcards_match_like_the_broker() {
        assert!(matches("devices/+/frames", "devices/a/frames"));
        assert!(!matches("devices/+/frames", "devices/a/b/frames"));
        assert!(!matches("devices/+/frames", "devices/a"));
        assert!(matches("devices/#", "devices/a/b"));
        assert!(matches("a/b", "a/b"));
        assert!(!matches("a/b", "a/b/c"));
    }
}
