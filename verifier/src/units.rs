//! How amounts are shown to people: energy in kWh and money in minor currency units, both
//! with three decimals, from the integer Wh and millis the ledger keeps (exact, no floats).

/// Wh as kWh: `1234` -> `"1.234"`.
pub fn kwh(wh: u64) -> String {
    format!("{}.{:03}", wh / 1000, wh % 1000)
}

/// Millis as minor currency units: `12345` -> `"12.345"`.
pub fn minor_units(millis: u64) -> String {
    format!("{}.{:03}", millis / 1000, millis % 1000)
}

/// Signed millis as minor currency units: `-12345` -> `"-12.345"`.
pub fn signed_minor_units(millis: i64) -> String {
    let sign = if millis < 0 { "-" } else { "" };
    format!("{sign}{}", minor_units(millis.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_decimals_exactly() {
        assert_eq!(kwh(0), "0.000");
        assert_eq!(kwh(1_234), "1.234");
        assert_eq!(kwh(50), "0.050");
        assert_eq!(minor_units(89_700), "89.700");
        assert_eq!(signed_minor_units(-10_809), "-10.809");
        assert_eq!(signed_minor_units(7), "0.007");
        assert_eq!(signed_minor_units(i64::MIN), "-9223372036854775.808");
    }
}
