//! Scales ("how sure are you, 1–5"): the bounds a host picks and the mean
//! and median the results carry.
//!
//! The store keeps one count per value (like a choice poll's options), so
//! a scale vote costs what a single-choice vote costs; the statistics are
//! derived from those counts by each instance when it renders.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Invalid;

/// Longest end label, in Unicode scalar values.
pub const MAX_LABEL_CHARS: usize = 40;

/// A scale's bounds and end labels, as created and as results show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Scale {
    /// The lowest value: 0 or 1.
    #[schema(minimum = 0, maximum = 1)]
    pub min: u32,
    /// The highest value: 2 to 10.
    #[schema(minimum = 2, maximum = 10)]
    pub max: u32,
    /// What the lowest value means ("not at all"), up to 40 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 40)]
    pub min_label: Option<String>,
    /// What the highest value means ("completely"), up to 40 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 40)]
    pub max_label: Option<String>,
}

impl Default for Scale {
    fn default() -> Self {
        Self {
            min: 1,
            max: 5,
            min_label: None,
            max_label: None,
        }
    }
}

fn label(field: &str, raw: &Option<String>) -> Result<Option<String>, Invalid> {
    let Some(text) = raw.as_deref().map(str::trim) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_LABEL_CHARS {
        return Err(Invalid(format!(
            "scale.{field} must be at most {MAX_LABEL_CHARS} characters"
        )));
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

impl Scale {
    /// Checks the bounds and labels; messages name the field.
    pub fn parse(input: &Scale) -> Result<Self, Invalid> {
        if input.min > 1 {
            return Err(Invalid("scale.min must be 0 or 1".into()));
        }
        if !(2..=10).contains(&input.max) {
            return Err(Invalid("scale.max must be from 2 to 10".into()));
        }
        Ok(Self {
            min: input.min,
            max: input.max,
            min_label: label("min_label", &input.min_label)?,
            max_label: label("max_label", &input.max_label)?,
        })
    }

    /// The values a vote may name, lowest first.
    pub fn values(&self) -> std::ops::RangeInclusive<u32> {
        self.min..=self.max
    }

    /// How many values (and so counts) the scale has.
    pub fn len(&self) -> usize {
        (self.max - self.min + 1) as usize
    }

    /// Never empty: max ≥ 2 > min.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Mean and median of a scale whose value `min + i` has `counts[i]` votes;
/// `None` with no votes. The median of an even count is the mean of the two
/// middle values.
pub fn stats(min: u32, counts: &[u64]) -> Option<(f64, f64)> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let sum: f64 = counts
        .iter()
        .enumerate()
        .map(|(i, &c)| (u64::from(min) + i as u64) as f64 * c as f64)
        .sum();
    // The value holding the k-th vote (0-based), in value order.
    let nth = |k: u64| {
        let mut seen = 0;
        for (i, &c) in counts.iter().enumerate() {
            seen += c;
            if k < seen {
                return u64::from(min) + i as u64;
            }
        }
        unreachable!("k is below the total")
    };
    let median = if total % 2 == 1 {
        nth(total / 2) as f64
    } else {
        (nth(total / 2 - 1) + nth(total / 2)) as f64 / 2.0
    };
    Some((sum / total as f64, median))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_labels_are_checked_by_name() {
        let ok = Scale::parse(&Scale {
            min: 0,
            max: 10,
            min_label: Some("  no ".into()),
            max_label: Some(" ".into()),
        })
        .unwrap();
        assert_eq!(ok.min_label.as_deref(), Some("no"));
        assert_eq!(ok.max_label, None);
        assert_eq!(ok.len(), 11);
        let bad = |min, max, l: &str| {
            Scale::parse(&Scale {
                min,
                max,
                min_label: Some(l.into()),
                max_label: None,
            })
            .unwrap_err()
            .0
        };
        assert!(bad(2, 5, "").starts_with("scale.min"));
        assert!(bad(1, 1, "").starts_with("scale.max"));
        assert!(bad(1, 11, "").starts_with("scale.max"));
        assert!(bad(1, 5, &"x".repeat(41)).starts_with("scale.min_label"));
    }

    #[test]
    fn mean_and_median() {
        assert_eq!(stats(1, &[0, 0, 0]), None);
        // Votes 1, 2, 2, 5: mean 2.5, median (2 + 2) / 2.
        assert_eq!(stats(1, &[1, 2, 0, 0, 1]), Some((2.5, 2.0)));
        // Votes 0, 3: median 1.5.
        assert_eq!(stats(0, &[1, 0, 0, 1]), Some((1.5, 1.5)));
        assert_eq!(stats(1, &[0, 3]), Some((2.0, 2.0)));
    }
}
