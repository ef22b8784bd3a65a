//! Sizes and rates as flags take them: bytes with a binary unit, or a share
//! of a volume.

/// A number of bytes with an optional unit: `B`, `KiB`, `MiB`, `GiB`, `TiB`.
pub fn bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        "TiB" => 40,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?} (B, KiB, MiB, GiB, TiB)"
            ));
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: not a number of bytes"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?}: too large"))
}

/// A rate in bytes per second (`100MiB`: 100 MiB/s); `0` (`None`): no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(pub Option<u64>);

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Rate, String> {
        bytes(s.trim().trim_end_matches("/s")).map(|b| Rate((b > 0).then_some(b)))
    }
}

/// The cap on the binary logs' size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteLimit {
    None,
    Bytes(u64),
    /// A share of the size of the filesystem the logs are on.
    Percent(u8),
}

impl std::str::FromStr for ByteLimit {
    type Err = String;

    /// `0` (no cap), a number of bytes with an optional `KiB`, `MiB`, `GiB`
    /// or `TiB`, or a share of the volume such as `25%`.
    fn from_str(s: &str) -> std::result::Result<ByteLimit, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            return match p.trim().parse::<u8>() {
                Ok(n @ 1..=100) => Ok(ByteLimit::Percent(n)),
                _ => Err(format!("{s:?}: a share of the volume is 1% to 100%")),
            };
        }
        match bytes(s)? {
            0 => Ok(ByteLimit::None),
            b => Ok(ByteLimit::Bytes(b)),
        }
    }
}

impl ByteLimit {
    /// The cap in bytes for logs on a filesystem of `fs_size` bytes.
    pub fn bytes(self, fs_size: impl FnOnce() -> Option<u64>) -> Option<u64> {
        match self {
            ByteLimit::None => None,
            ByteLimit::Bytes(b) => Some(b),
            ByteLimit::Percent(p) => fs_size().map(|s| s / 100 * u64::from(p)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_limits() {
        for (text, want) in [
            ("0", ByteLimit::None),
            ("1048576", ByteLimit::Bytes(1 << 20)),
            ("64MiB", ByteLimit::Bytes(64 << 20)),
            ("10 GiB", ByteLimit::Bytes(10 << 30)),
            ("25%", ByteLimit::Percent(25)),
        ] {
            assert_eq!(text.parse::<ByteLimit>(), Ok(want), "{text}");
        }
        for bad in ["", "-1", "10GB", "0%", "101%", "x", "99999999999TiB"] {
            assert!(bad.parse::<ByteLimit>().is_err(), "{bad}");
        }
        assert_eq!(ByteLimit::Percent(25).bytes(|| Some(1000)), Some(250));
        assert_eq!(ByteLimit::Percent(25).bytes(|| None), None);
        assert_eq!(ByteLimit::None.bytes(|| Some(1000)), None);
    }

    #[test]
    fn rates() {
        let rate = |s: &str| s.parse::<Rate>().map(|r| r.0);
        assert_eq!(rate("0"), Ok(None));
        assert_eq!(rate("100MiB"), Ok(Some(100 << 20)));
        assert_eq!(rate("31250KiB/s"), Ok(Some(31250 << 10)));
        assert!(rate("fast").is_err());
    }
}
