//! Rankings ("put these in order"): a vote is a permutation of the
//! options, counted as Borda points and first places.
//!
//! The store keeps `2n` counts for `n` options: points of each option, then
//! how many ranked each first. A ranking vote is thus `n + 1` increments in
//! the same hash a choice vote uses, and allow_change subtracts the old
//! ranking's increments in the same script call.

use super::Invalid;

/// Fewest options a ranking may have.
pub const MIN_OPTIONS: usize = 2;
/// Most options a ranking may have: a vote is `n + 1` increments.
pub const MAX_OPTIONS: usize = 10;

/// Checks that `order` is a permutation of `0..n`; the message names the
/// field and what is wrong.
pub fn check(order: &[u32], n: usize) -> Result<(), Invalid> {
    if order.len() != n {
        return Err(Invalid(format!(
            "ranking must list each of the {n} options exactly once"
        )));
    }
    let mut seen = vec![false; n];
    for &o in order {
        let Some(slot) = seen.get_mut(o as usize) else {
            return Err(Invalid(format!("ranking: option {o} does not exist")));
        };
        if std::mem::replace(slot, true) {
            return Err(Invalid(format!("ranking: option {o} is listed twice")));
        }
    }
    Ok(())
}

/// The count increments of a (checked) ranking of `n` options: Borda points
/// (n−1 for first … 0 for last) at the option's index, +1 at `n + first`.
pub fn deltas(order: &[u32], n: usize) -> Vec<(usize, i64)> {
    let mut out: Vec<(usize, i64)> = order
        .iter()
        .enumerate()
        .map(|(rank, &o)| (o as usize, (n - 1 - rank) as i64))
        .collect();
    if let Some(&first) = order.first() {
        out.push((n + first as usize, 1));
    }
    out
}

/// Option indexes by points, most first; equal points keep creation order.
pub fn order_by_points(points: &[u64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(points[i]));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_permutations_pass() {
        assert!(check(&[2, 0, 1], 3).is_ok());
        for bad in [&[0, 1][..], &[0, 0, 1], &[0, 1, 3], &[0, 1, 2, 3]] {
            let e = check(bad, 3).unwrap_err();
            assert!(e.0.starts_with("ranking"), "{bad:?}");
        }
    }

    #[test]
    fn borda_points_and_first_places() {
        assert_eq!(deltas(&[2, 0, 1], 3), vec![(2, 2), (0, 1), (1, 0), (5, 1)]);
    }

    #[test]
    fn ties_keep_creation_order() {
        assert_eq!(order_by_points(&[1, 3, 1, 3]), vec![1, 3, 0, 2]);
    }
}
