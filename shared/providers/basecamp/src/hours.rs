//! Basecamp's `hours`: sent as `H:MM` (exact for every whole number of minutes), read back from
//! the decimal strings Basecamp answers with (`"2.0"`, `"2.75"`, `"0.33"`) without going through
//! a float.

/// `minutes` as the `H:MM` string Basecamp accepts: 20 minutes is `"0:20"`, 90 is `"1:30"`.
pub fn format_hours(minutes: u32) -> String {
    format!("{}:{:02}", minutes / 60, minutes % 60)
}

/// Parses `hours` as Basecamp answers it, a decimal string (`"2.75"`, `".5"`, `"3"`), or the
/// `H:MM` form it accepts, into whole minutes, rounding half up to the nearest minute with
/// integer arithmetic only (`"0.33"` is 19.8 minutes, so 20). `None` for anything else:
/// signs, exponents, empty strings, more than 9 decimals, minutes of 60 or more.
pub fn parse_hours(hours: &str) -> Option<u32> {
    let v = hours.trim();
    if let Some((h, m)) = v.split_once(':') {
        if h.is_empty() || m.len() != 2 || !digits(h) || !digits(m) {
            return None;
        }
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        return (m < 60).then_some(h.checked_mul(60)?.checked_add(m)?);
    }
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    if (whole.is_empty() && frac.is_empty()) || frac.len() > 9 || !digits(whole) || !digits(frac) {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let scale = 10u64.pow(frac.len() as u32);
    let frac: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    // minutes = whole * 60 + round(frac / scale * 60)
    let minutes = whole.checked_mul(60)? + (frac * 60 * 2 + scale) / (2 * scale);
    u32::try_from(minutes).ok()
}

fn digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_exact_h_mm() {
        assert_eq!(format_hours(20), "0:20");
        assert_eq!(format_hours(0), "0:00");
        assert_eq!(format_hours(5), "0:05");
        assert_eq!(format_hours(60), "1:00");
        assert_eq!(format_hours(90), "1:30");
        assert_eq!(format_hours(165), "2:45");
        assert_eq!(format_hours(24 * 60), "24:00");
        assert_eq!(format_hours(600 + 7), "10:07");
    }

    #[test]
    fn parses_decimals_without_float_drift() {
        assert_eq!(parse_hours("2.0"), Some(120));
        assert_eq!(parse_hours("2.75"), Some(165));
        assert_eq!(parse_hours("0.33"), Some(20));
        assert_eq!(parse_hours("0.1"), Some(6));
        assert_eq!(parse_hours("0.7"), Some(42));
        assert_eq!(parse_hours(".5"), Some(30));
        assert_eq!(parse_hours("3"), Some(180));
        assert_eq!(parse_hours(" 1.5 "), Some(90));
        assert_eq!(parse_hours("0.333333333"), Some(20));
        assert_eq!(parse_hours("0.0083"), Some(0), "0.498 min rounds down");
        assert_eq!(parse_hours("0.00834"), Some(1), "0.5004 min rounds up");
        assert_eq!(parse_hours("1:30"), Some(90));
        assert_eq!(parse_hours("0:20"), Some(20));
        for bad in [
            "",
            ".",
            "-1",
            "+1",
            "1e2",
            "1,5",
            "1.2.3",
            "1:5",
            "1:60",
            "a",
            "0.1234567891",
        ] {
            assert_eq!(parse_hours(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_minute_survives_the_round_trip_through_hundredths() {
        // Basecamp answers hundredths of an hour; rounding to the minute must give back what
        // was sent, for every duration up to a full day.
        for minutes in 0..=24 * 60u32 {
            let hundredths = (u64::from(minutes) * 100 * 2 + 60) / 120;
            let decimal = format!("{}.{:02}", hundredths / 100, hundredths % 100);
            assert_eq!(parse_hours(&decimal), Some(minutes), "{decimal}");
            assert_eq!(parse_hours(&format_hours(minutes)), Some(minutes));
        }
    }
}
