//! MySQL GTID sets (`uuid:1-5:7,uuid:1-3`): counted here; subtraction is left
//! to the server's own `GTID_SUBTRACT`.

/// How many transactions a set holds.
pub fn count(set: &str) -> u64 {
    set.split(',')
        .flat_map(|part| part.trim().split(':').skip(1))
        .filter_map(|range| match range.split_once('-') {
            Some((a, b)) => Some(b.parse::<u64>().ok()? + 1 - a.parse::<u64>().ok()?),
            None => range.parse::<u64>().ok().map(|_| 1),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counting() {
        assert_eq!(count(""), 0);
        assert_eq!(count("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5"), 5);
        assert_eq!(
            count(
                "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7:9-10,\n2174b383-5441-11e8-b90a-c80aa9429562:1-3"
            ),
            11
        );
        assert_eq!(count("uuid:tag:1-4"), 4);
    }
}
