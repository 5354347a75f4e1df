//! Real interval data into period readings, for `veilwatt-meter sign`.
//!
//! Two inputs are read (docs/spec/household.md):
//! - CSV with a header `timestamp,import_wh,export_wh`; one row per interval, the timestamp is
//!   the interval's start as Unix seconds or RFC 3339; the interval length is the distance
//!   between the first two rows unless given.
//! - Green Button (NAESB ESPI) XML: `IntervalReading`s (`timePeriod/start`, `duration`,
//!   `value`) of `IntervalBlock`s, each in the units and flow direction of the `ReadingType`
//!   that precedes it in the feed (uom 72 = Wh, `powerOfTenMultiplier`, flowDirection 1 =
//!   delivered to the customer = import, 19 = received from the customer = export).
//!
//! Readings become period readings only if they tile whole periods exactly: one interval
//! length that divides the period, aligned to it, no gap, no overlap. Anything else is an
//! error that names the row or time, never a silently skewed statement.

use std::collections::BTreeMap;

use crate::simulate::PeriodReadings;

/// One metered interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// Start, Unix seconds.
    pub start: u64,
    /// Length, seconds.
    pub secs: u64,
    /// Energy drawn from the grid, Wh.
    pub import_wh: u64,
    /// Energy fed into the grid, Wh.
    pub export_wh: u64,
}

/// Why interval data cannot be signed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IntervalError {
    /// The CSV header is missing or names other columns.
    #[error("CSV header must be `timestamp,import_wh,export_wh`, found `{0}`")]
    Header(String),
    /// A column is in another unit than Wh.
    #[error("{what} is in {unit}; meters sign whole watt-hours: export the data in Wh")]
    Units {
        /// The column or reading type.
        what: String,
        /// Its unit.
        unit: String,
    },
    /// A row or element does not parse.
    #[error("{at}: {why}")]
    Malformed {
        /// Row or element.
        at: String,
        /// What is wrong.
        why: String,
    },
    /// Nothing to sign.
    #[error("the input holds no readings")]
    Empty,
    /// Readings are missing between two intervals.
    #[error("gap: no readings from {from} to {to} ({secs} s missing)")]
    Gap {
        /// End of the last interval before the gap.
        from: String,
        /// Start of the next interval.
        to: String,
        /// Missing seconds.
        secs: u64,
    },
    /// Two intervals overlap (or are out of order).
    #[error("overlap: the interval starting at {start} begins before the previous one ends at {prev_end}")]
    Overlap {
        /// Start of the offending interval.
        start: String,
        /// End of the previous interval.
        prev_end: String,
    },
    /// Intervals of different lengths, or a length that does not tile the period.
    #[error("interval length {secs} s at {at} does not fit: {why}")]
    Length {
        /// The offending interval's start.
        at: String,
        /// Its length.
        secs: u64,
        /// Why it does not fit.
        why: String,
    },
    /// A period is only partly covered.
    #[error("period {period} is incomplete: {have} of {need} intervals; sign whole periods only")]
    Incomplete {
        /// Period.
        period: u64,
        /// Intervals present.
        have: u64,
        /// Intervals needed.
        need: u64,
    },
    /// A period's total does not fit the statement's 32-bit Wh fields.
    #[error("period {period}: {what} of {wh} Wh exceeds the statement's range")]
    Overflow {
        /// Period.
        period: u64,
        /// Import or export.
        what: &'static str,
        /// The total.
        wh: u64,
    },
    /// Import and export series disagree on their intervals (ESPI).
    #[error("the import and export series cover different intervals (first difference at {0})")]
    Series(String),
}

/// A Unix time as RFC 3339 UTC, for messages.
pub fn time(t: u64) -> String {
    i64::try_from(t)
        .ok()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or_else(
            || format!("{t}"),
            |d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
}

fn malformed(at: impl Into<String>, why: impl Into<String>) -> IntervalError {
    IntervalError::Malformed {
        at: at.into(),
        why: why.into(),
    }
}

fn parse_time(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(t) = s.parse::<u64>() {
        return Ok(t);
    }
    let d = chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("timestamp {s:?} is neither Unix seconds nor RFC 3339 ({e})"))?;
    u64::try_from(d.timestamp()).map_err(|_| format!("timestamp {s:?} is before 1970"))
}

fn parse_wh(s: &str, column: &str) -> Result<u64, String> {
    let s = s.trim();
    s.parse::<u64>().map_err(|_| {
        if s.contains('.') || s.contains(',') {
            format!("{column} {s:?} is not a whole number of Wh")
        } else if s.starts_with('-') {
            format!("{column} {s:?} is negative")
        } else {
            format!("{column} {s:?} is not a number")
        }
    })
}

/// The unit a column name states, if it is an energy or power unit other than Wh.
fn foreign_unit(name: &str) -> Option<&'static str> {
    let n = name.to_ascii_lowercase();
    [
        ("_kwh", "kWh"),
        ("_mwh", "MWh"),
        ("_kw", "kW"),
        ("_w", "W"),
        ("_j", "J"),
    ]
    .into_iter()
    .find(|(suffix, _)| n.ends_with(suffix))
    .map(|(_, u)| u)
}

/// Parses CSV interval data. `interval_secs` overrides the length inferred from the first two
/// rows.
pub fn parse_csv(text: &[u8], interval_secs: Option<u64>) -> Result<Vec<Interval>, IntervalError> {
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text);
    let header = r
        .headers()
        .map_err(|e| malformed("header", e.to_string()))?
        .clone();
    let names: Vec<&str> = header.iter().collect();
    for (i, expected) in ["import_wh", "export_wh"].iter().enumerate() {
        let name = names.get(i + 1).copied().unwrap_or("");
        if name != *expected {
            if let Some(unit) = foreign_unit(name) {
                return Err(IntervalError::Units {
                    what: format!("column {name:?}"),
                    unit: unit.to_owned(),
                });
            }
        }
    }
    if names != ["timestamp", "import_wh", "export_wh"] {
        return Err(IntervalError::Header(names.join(",")));
    }
    let mut rows = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let at = format!("line {line}");
        let rec = rec.map_err(|e| malformed(&at, e.to_string()))?;
        if rec.len() != 3 {
            return Err(malformed(
                &at,
                format!("expected 3 fields, found {}", rec.len()),
            ));
        }
        let start = parse_time(&rec[0]).map_err(|e| malformed(&at, e))?;
        let import_wh = parse_wh(&rec[1], "import_wh").map_err(|e| malformed(&at, e))?;
        let export_wh = parse_wh(&rec[2], "export_wh").map_err(|e| malformed(&at, e))?;
        rows.push((start, import_wh, export_wh));
    }
    let secs = match (interval_secs, rows.as_slice()) {
        (_, []) => return Err(IntervalError::Empty),
        (Some(s), _) => s,
        (None, [a, b, ..]) if b.0 > a.0 => b.0 - a.0,
        (None, [a, b, ..]) => {
            return Err(IntervalError::Overlap {
                start: time(b.0),
                prev_end: time(a.0),
            })
        }
        (None, [_]) => {
            return Err(malformed(
                "line 2",
                "one row only: give the interval length (--interval-secs)",
            ))
        }
    };
    if secs == 0 {
        return Err(malformed("interval length", "must be positive"));
    }
    Ok(rows
        .into_iter()
        .map(|(start, import_wh, export_wh)| Interval {
            start,
            secs,
            import_wh,
            export_wh,
        })
        .collect())
}

/// ESPI `ReadingType` fields that matter here.
#[derive(Default, Clone, Copy)]
struct ReadingType {
    uom: Option<u32>,
    power_of_ten: i32,
    flow_direction: Option<u32>,
}

fn uom_name(uom: u32) -> String {
    match uom {
        38 => "W (uom 38)".into(),
        61 => "VA (uom 61)".into(),
        63 => "var (uom 63)".into(),
        71 => "VAh (uom 71)".into(),
        73 => "varh (uom 73)".into(),
        119 => "m3 (uom 119)".into(),
        169 => "therm (uom 169)".into(),
        other => format!("uom {other}"),
    }
}

/// Parses Green Button (ESPI) XML interval data into import/export intervals.
pub fn parse_espi(xml: &[u8]) -> Result<Vec<Interval>, IntervalError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut current: Option<ReadingType> = None;
    let mut building: Option<ReadingType> = None;
    // (flow direction, start) -> (secs, Wh)
    let mut series: [BTreeMap<u64, (u64, u64)>; 2] = [BTreeMap::new(), BTreeMap::new()];
    let (mut start, mut duration, mut value) = (None::<u64>, None::<u64>, None::<i64>);
    let mut buf = Vec::new();
    let mut readings = 0usize;
    loop {
        let pos = reader.buffer_position();
        let at = || format!("XML byte {pos}");
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| malformed(at(), e.to_string()))?;
        match event {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match name.as_str() {
                    "ReadingType" => building = Some(ReadingType::default()),
                    "IntervalReading" => (start, duration, value) = (None, None, None),
                    _ => {}
                }
                path.push(name);
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                match name.as_str() {
                    "ReadingType" => current = building.take(),
                    "IntervalReading" => {
                        readings += 1;
                        let rt = current.ok_or_else(|| {
                            malformed(
                                at(),
                                "an IntervalReading before any ReadingType: units unknown",
                            )
                        })?;
                        let unit = rt.uom.ok_or_else(|| {
                            malformed(at(), "the ReadingType has no uom: units unknown")
                        })?;
                        if unit != 72 {
                            return Err(IntervalError::Units {
                                what: "the ReadingType".into(),
                                unit: uom_name(unit),
                            });
                        }
                        let dir = match rt.flow_direction {
                            Some(1) => 0,
                            Some(19) => 1,
                            other => {
                                return Err(malformed(
                                    at(),
                                    format!("flowDirection {other:?}: expected 1 (delivered, import) or 19 (received, export)"),
                                ))
                            }
                        };
                        let (Some(s), Some(d), Some(v)) = (start, duration, value) else {
                            return Err(malformed(
                                at(),
                                "IntervalReading needs timePeriod/start, timePeriod/duration and value",
                            ));
                        };
                        let wh = scale(v, rt.power_of_ten).map_err(|why| malformed(at(), why))?;
                        if series[dir].insert(s, (d, wh)).is_some() {
                            return Err(IntervalError::Overlap {
                                start: time(s),
                                prev_end: time(s.saturating_add(d)),
                            });
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(t) => {
                let text = t
                    .unescape()
                    .map_err(|e| malformed(at(), e.to_string()))?
                    .into_owned();
                let leaf = path.last().map(String::as_str).unwrap_or("");
                let parent = path.iter().rev().nth(1).map(String::as_str).unwrap_or("");
                let num = |what: &str| -> Result<i64, IntervalError> {
                    text.trim()
                        .parse::<i64>()
                        .map_err(|_| malformed(at(), format!("{what} {text:?} is not an integer")))
                };
                if let Some(rt) = building.as_mut() {
                    match leaf {
                        "uom" => rt.uom = Some(u32::try_from(num("uom")?).unwrap_or(u32::MAX)),
                        "powerOfTenMultiplier" => {
                            rt.power_of_ten = i32::try_from(num("powerOfTenMultiplier")?)
                                .map_err(|_| malformed(at(), "powerOfTenMultiplier out of range"))?
                        }
                        "flowDirection" => {
                            rt.flow_direction =
                                Some(u32::try_from(num("flowDirection")?).unwrap_or(u32::MAX))
                        }
                        _ => {}
                    }
                } else if path.iter().any(|p| p == "IntervalReading") {
                    let non_negative = |what: &str| -> Result<u64, IntervalError> {
                        u64::try_from(num(what)?)
                            .map_err(|_| malformed(at(), format!("{what} is negative")))
                    };
                    match (parent, leaf) {
                        ("timePeriod", "start") => start = Some(non_negative("start")?),
                        ("timePeriod", "duration") => duration = Some(non_negative("duration")?),
                        ("IntervalReading", "value") => value = Some(num("value")?),
                        _ => {}
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if readings == 0 {
        return Err(IntervalError::Empty);
    }
    let [import, export] = series;
    if !export.is_empty() && !import.is_empty() {
        let only_in = |a: &BTreeMap<u64, (u64, u64)>, b: &BTreeMap<u64, (u64, u64)>| {
            a.keys().find(|k| !b.contains_key(k)).copied()
        };
        let first = [only_in(&import, &export), only_in(&export, &import)]
            .into_iter()
            .flatten()
            .min();
        if let Some(k) = first {
            return Err(IntervalError::Series(time(k)));
        }
    }
    let (base, other, base_is_import) = if import.is_empty() {
        (export, BTreeMap::new(), false)
    } else {
        (import, export, true)
    };
    let mut out = Vec::with_capacity(base.len());
    for (start, (secs, wh)) in base {
        let (osecs, owh) = other.get(&start).copied().unwrap_or((secs, 0));
        if osecs != secs {
            return Err(IntervalError::Series(time(start)));
        }
        let (import_wh, export_wh) = if base_is_import { (wh, owh) } else { (owh, wh) };
        out.push(Interval {
            start,
            secs,
            import_wh,
            export_wh,
        });
    }
    Ok(out)
}

/// `value x 10^power` as whole Wh.
fn scale(value: i64, power: i32) -> Result<u64, String> {
    let v = u64::try_from(value).map_err(|_| format!("value {value} is negative"))?;
    let p = 10u64
        .checked_pow(power.unsigned_abs())
        .ok_or_else(|| format!("powerOfTenMultiplier {power} out of range"))?;
    if power >= 0 {
        v.checked_mul(p)
            .ok_or_else(|| format!("value {value}e{power} Wh overflows"))
    } else if v % p == 0 {
        Ok(v / p)
    } else {
        Err(format!(
            "value {value}e{power} Wh is not a whole number of Wh"
        ))
    }
}

/// One period's readings from the intervals that tile it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeriodData {
    /// Settlement period.
    pub period: u64,
    /// The readings to sign.
    pub readings: PeriodReadings,
}

/// Groups intervals into settlement periods of `period_secs` from `genesis_time`, checking
/// that they tile whole periods: one length dividing the period, aligned, in order, no gap,
/// no overlap, every period complete, totals within 32 bits.
pub fn periods(
    intervals: &[Interval],
    genesis_time: u64,
    period_secs: u64,
) -> Result<Vec<PeriodData>, IntervalError> {
    let first = intervals.first().ok_or(IntervalError::Empty)?;
    let secs = first.secs;
    let length = |iv: &Interval, why: String| IntervalError::Length {
        at: time(iv.start),
        secs: iv.secs,
        why,
    };
    if secs == 0 || period_secs % secs != 0 {
        return Err(length(
            first,
            format!("it must divide the {period_secs} s settlement period"),
        ));
    }
    let need = period_secs / secs;
    let mut out: Vec<PeriodData> = Vec::new();
    let mut prev: Option<&Interval> = None;
    for iv in intervals {
        if iv.secs != secs {
            return Err(length(iv, format!("the data's intervals are {secs} s")));
        }
        if iv.start < genesis_time {
            return Err(malformed(
                time(iv.start),
                format!("before the market's genesis at {}", time(genesis_time)),
            ));
        }
        if (iv.start - genesis_time) % secs != 0 {
            return Err(length(
                iv,
                "it is not aligned to the settlement periods".into(),
            ));
        }
        if let Some(p) = prev {
            let prev_end = p.start + p.secs;
            if iv.start < prev_end {
                return Err(IntervalError::Overlap {
                    start: time(iv.start),
                    prev_end: time(prev_end),
                });
            }
            if iv.start > prev_end {
                return Err(IntervalError::Gap {
                    from: time(prev_end),
                    to: time(iv.start),
                    secs: iv.start - prev_end,
                });
            }
        }
        prev = Some(iv);
        let period = (iv.start - genesis_time) / period_secs;
        let to_u32 = |wh: u64, what| {
            u32::try_from(wh).map_err(|_| IntervalError::Overflow { period, what, wh })
        };
        let reading = (
            to_u32(iv.import_wh, "import")?,
            to_u32(iv.export_wh, "export")?,
        );
        match out.last_mut() {
            Some(d) if d.period == period => d.readings.minutes.push(reading),
            _ => out.push(PeriodData {
                period,
                readings: PeriodReadings {
                    import_wh: 0,
                    export_wh: 0,
                    minutes: vec![reading],
                },
            }),
        }
    }
    for d in &mut out {
        let have = d.readings.minutes.len() as u64;
        if have != need {
            return Err(IntervalError::Incomplete {
                period: d.period,
                have,
                need,
            });
        }
        let sum = |f: fn(&(u32, u32)) -> u32| {
            d.readings
                .minutes
                .iter()
                .map(|m| u64::from(f(m)))
                .sum::<u64>()
        };
        let period = d.period;
        let total = |wh: u64, what| {
            u32::try_from(wh).map_err(|_| IntervalError::Overflow { period, what, wh })
        };
        d.readings.import_wh = total(sum(|m| m.0), "import")?;
        d.readings.export_wh = total(sum(|m| m.1), "export")?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1_795_500_000; // a multiple of 900

    fn csv_of(rows: &[(u64, u64, u64)]) -> Vec<u8> {
        let mut s = String::from("timestamp,import_wh,export_wh\n");
        for (t, i, e) in rows {
            s.push_str(&format!("{t},{i},{e}\n"));
        }
        s.into_bytes()
    }

    fn quarter_hours(n: u64) -> Vec<(u64, u64, u64)> {
        (0..n).map(|k| (G + 900 * k, 10 + k, 100 * k)).collect()
    }

    #[test]
    fn csv_tiles_hours() {
        let iv = parse_csv(&csv_of(&quarter_hours(8)), None).unwrap();
        let p = periods(&iv, G, 3600).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].period, 0);
        assert_eq!(p[1].period, 1);
        assert_eq!(p[0].readings.import_wh, 10 + 11 + 12 + 13);
        assert_eq!(p[1].readings.export_wh, 100 * (4 + 5 + 6 + 7));
        assert_eq!(p[1].readings.minutes.len(), 4);
    }

    #[test]
    fn csv_accepts_rfc3339() {
        let text = format!(
            "timestamp,import_wh,export_wh\n{},1,2\n{},3,4\n",
            time(G),
            time(G + 1800)
        );
        let iv = parse_csv(text.as_bytes(), None).unwrap();
        assert_eq!(iv[1].start, G + 1800);
        assert_eq!(iv[0].secs, 1800);
        assert_eq!(periods(&iv, G, 3600).unwrap()[0].readings.import_wh, 4);
    }

    #[test]
    fn csv_errors_are_precise() {
        let mut rows = quarter_hours(8);
        rows.remove(5);
        let iv = parse_csv(&csv_of(&rows), None).unwrap();
        assert_eq!(
            periods(&iv, G, 3600).unwrap_err(),
            IntervalError::Gap {
                from: time(G + 900 * 5),
                to: time(G + 900 * 6),
                secs: 900
            }
        );
        let mut rows = quarter_hours(8);
        rows[6].0 -= 300;
        let e = periods(&parse_csv(&csv_of(&rows), None).unwrap(), G, 3600).unwrap_err();
        assert!(matches!(e, IntervalError::Length { .. }), "{e}");
        let mut rows = quarter_hours(8);
        rows[6].0 = rows[5].0;
        let e = periods(&parse_csv(&csv_of(&rows), None).unwrap(), G, 3600).unwrap_err();
        assert!(matches!(e, IntervalError::Overlap { .. }), "{e}");
        // Half a period.
        let e = periods(
            &parse_csv(&csv_of(&quarter_hours(6)), None).unwrap(),
            G,
            3600,
        )
        .unwrap_err();
        assert_eq!(
            e,
            IntervalError::Incomplete {
                period: 1,
                have: 2,
                need: 4
            }
        );
        // 7-minute intervals do not divide an hour.
        let e = periods(
            &parse_csv(&csv_of(&quarter_hours(8)), Some(420)).unwrap(),
            G,
            3600,
        )
        .unwrap_err();
        assert!(matches!(e, IntervalError::Length { .. }), "{e}");
        // Units and numbers.
        let e = parse_csv(b"timestamp,import_kwh,export_kwh\n1,0.5,0\n", None).unwrap_err();
        assert_eq!(
            e,
            IntervalError::Units {
                what: "column \"import_kwh\"".into(),
                unit: "kWh".into()
            }
        );
        assert!(e.to_string().contains("export the data in Wh"));
        let e = parse_csv(b"time,imp,exp\n1,0,0\n", None).unwrap_err();
        assert!(matches!(e, IntervalError::Header(_)), "{e}");
        let e = parse_csv(
            format!("timestamp,import_wh,export_wh\n{G},1.5,0\n").as_bytes(),
            Some(900),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("line 2") && e.to_string().contains("whole number"),
            "{e}"
        );
        let e = parse_csv(
            format!("timestamp,import_wh,export_wh\n{G},-1,0\n").as_bytes(),
            Some(900),
        )
        .unwrap_err();
        assert!(e.to_string().contains("negative"), "{e}");
        let e =
            parse_csv(b"timestamp,import_wh,export_wh\nyesterday,1,0\n", Some(900)).unwrap_err();
        assert!(e.to_string().contains("RFC 3339"), "{e}");
        assert_eq!(
            parse_csv(b"timestamp,import_wh,export_wh\n", None).unwrap_err(),
            IntervalError::Empty
        );
        // A total beyond u32.
        let rows: Vec<_> = (0..4).map(|k| (G + 900 * k, 2_000_000_000, 0)).collect();
        let e = periods(&parse_csv(&csv_of(&rows), None).unwrap(), G, 3600).unwrap_err();
        assert!(
            matches!(e, IntervalError::Overflow { period: 0, .. }),
            "{e}"
        );
    }

    /// One ReadingType and its readings: (flowDirection, uom, powerOfTenMultiplier, readings).
    type Block<'a> = (u32, u32, i32, &'a [(u64, i64)]);

    fn espi(blocks: &[Block]) -> Vec<u8> {
        let mut s = String::from(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:espi="http://naesb.org/espi">"#,
        );
        for (flow, uom, pow, readings) in blocks {
            s.push_str(&format!(
                "<entry><content><espi:ReadingType><espi:flowDirection>{flow}</espi:flowDirection>\
                 <espi:powerOfTenMultiplier>{pow}</espi:powerOfTenMultiplier><espi:uom>{uom}</espi:uom>\
                 </espi:ReadingType></content></entry><entry><content><espi:IntervalBlock>"
            ));
            for (start, v) in *readings {
                s.push_str(&format!(
                    "<espi:IntervalReading><espi:timePeriod><espi:duration>900</espi:duration>\
                     <espi:start>{start}</espi:start></espi:timePeriod><espi:value>{v}</espi:value>\
                     </espi:IntervalReading>"
                ));
            }
            s.push_str("</espi:IntervalBlock></content></entry>");
        }
        s.push_str("</feed>");
        s.into_bytes()
    }

    #[test]
    fn espi_import_and_export() {
        let imp: Vec<(u64, i64)> = (0..4).map(|k| (G + 900 * k, 100 + k as i64)).collect();
        let exp: Vec<(u64, i64)> = (0..4).map(|k| (G + 900 * k, 2 * k as i64)).collect();
        let iv = parse_espi(&espi(&[(1, 72, 0, &imp), (19, 72, 3, &exp)])).unwrap();
        let p = periods(&iv, G, 3600).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].readings.import_wh, 100 + 101 + 102 + 103);
        assert_eq!(p[0].readings.export_wh, 2_000 * (1 + 2 + 3));
        // Import only: export is zero.
        let iv = parse_espi(&espi(&[(1, 72, 0, &imp)])).unwrap();
        assert_eq!(periods(&iv, G, 3600).unwrap()[0].readings.export_wh, 0);
    }

    #[test]
    fn espi_errors_are_precise() {
        let imp: Vec<(u64, i64)> = (0..4).map(|k| (G + 900 * k, 100)).collect();
        let e = parse_espi(&espi(&[(1, 38, 0, &imp)])).unwrap_err();
        assert!(
            matches!(&e, IntervalError::Units { unit, .. } if unit.starts_with("W ")),
            "{e}"
        );
        let e = parse_espi(&espi(&[(1, 72, -1, &[(G, 15)])])).unwrap_err();
        assert!(e.to_string().contains("not a whole number"), "{e}");
        let e = parse_espi(&espi(&[(4, 72, 0, &imp)])).unwrap_err();
        assert!(e.to_string().contains("flowDirection"), "{e}");
        let e = parse_espi(&espi(&[(1, 72, 0, &[(G, 1), (G, 2)])])).unwrap_err();
        assert!(matches!(e, IntervalError::Overlap { .. }), "{e}");
        let short: Vec<(u64, i64)> = imp[..3].to_vec();
        let e = parse_espi(&espi(&[(1, 72, 0, &imp), (19, 72, 0, &short)])).unwrap_err();
        assert!(matches!(e, IntervalError::Series(_)), "{e}");
        let e = parse_espi(b"<feed><entry>").unwrap_err();
        assert!(
            matches!(e, IntervalError::Malformed { .. } | IntervalError::Empty),
            "{e}"
        );
        let e = parse_espi(b"<feed><IntervalBlock><IntervalReading><timePeriod><start>1</start><duration>900</duration></timePeriod><value>1</value></IntervalReading></IntervalBlock></feed>").unwrap_err();
        assert!(e.to_string().contains("before any ReadingType"), "{e}");
        let mut gap = imp.clone();
        gap.remove(2);
        let e = periods(&parse_espi(&espi(&[(1, 72, 0, &gap)])).unwrap(), G, 3600).unwrap_err();
        assert!(matches!(e, IntervalError::Gap { secs: 900, .. }), "{e}");
    }
}
