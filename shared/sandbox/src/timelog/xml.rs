//! A small namespace-aware element tree for reading SOAP envelopes, and the text helpers the
//! writers share. Requests are a few kilobytes, so a tree is simpler than streaming and lets
//! the handlers look children up in any order, with any prefixes.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};
use quick_xml::NsReader;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

/// `http://schemas.xmlsoap.org/soap/envelope/`.
pub(crate) const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// `http://www.w3.org/2001/XMLSchema-instance` (`i:nil`).
pub(crate) const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// One element: its namespace (empty when unbound), local name, attributes, children and the
/// concatenated text directly inside it.
#[derive(Debug, Clone, Default)]
pub(crate) struct El {
    pub(crate) ns: String,
    pub(crate) name: String,
    /// `(namespace, local name, value)`.
    pub(crate) attrs: Vec<(String, String, String)>,
    pub(crate) children: Vec<El>,
    pub(crate) text: String,
}

impl El {
    /// The first child `{ns}name`.
    pub(crate) fn child(&self, ns: &str, name: &str) -> Option<&El> {
        self.children.iter().find(|c| c.ns == ns && c.name == name)
    }

    /// Every child `{ns}name`, in document order.
    pub(crate) fn all<'a>(&'a self, ns: &'a str, name: &'a str) -> impl Iterator<Item = &'a El> {
        self.children
            .iter()
            .filter(move |c| c.ns == ns && c.name == name)
    }

    /// Trimmed text of the child `{ns}name`; `None` when it is absent or `i:nil="true"`.
    pub(crate) fn text_of(&self, ns: &str, name: &str) -> Option<&str> {
        self.child(ns, name)
            .filter(|c| !c.is_nil())
            .map(|c| c.text.trim())
    }

    pub(crate) fn is_nil(&self) -> bool {
        self.attrs
            .iter()
            .any(|(ns, n, v)| ns == XSI && n == "nil" && v.trim() == "true")
    }
}

fn owned_ns(r: &ResolveResult<'_>) -> Result<String, String> {
    match r {
        ResolveResult::Bound(ns) => Ok(AsRef::<str>::as_ref(ns).to_owned()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(p) => Err(format!("undeclared namespace prefix '{p}'")),
    }
}

fn element(reader: &NsReader<&[u8]>, ns: String, e: &BytesStart<'_>) -> Result<El, String> {
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| e.to_string())?;
        let key = a.key;
        if key.as_namespace_binding().is_some() {
            continue;
        }
        let (r, local) = reader.resolver().resolve_attribute(key);
        let ans = owned_ns(&r)?;
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| e.to_string())?;
        attrs.push((
            ans,
            AsRef::<str>::as_ref(&local).to_owned(),
            value.into_owned(),
        ));
    }
    Ok(El {
        ns,
        name: AsRef::<str>::as_ref(&e.local_name()).to_owned(),
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

/// Parses a whole document into its root element. Any well-formedness error (including a
/// prefix that is not declared, or a second root) is an `Err` with a human message.
pub(crate) fn parse(body: &[u8]) -> Result<El, String> {
    let mut reader = NsReader::from_reader(body);
    let mut stack: Vec<El> = Vec::new();
    let mut root: Option<El> = None;
    let close = |stack: &mut Vec<El>, root: &mut Option<El>, el: El| -> Result<(), String> {
        match stack.last_mut() {
            Some(parent) => parent.children.push(el),
            None if root.is_none() => *root = Some(el),
            None => return Err("more than one root element".into()),
        }
        Ok(())
    };
    loop {
        let (ns, ev) = match reader.read_resolved_event() {
            Ok((res, ev)) => {
                let ns = match &ev {
                    Event::Start(_) | Event::Empty(_) => owned_ns(&res)?,
                    _ => String::new(),
                };
                (ns, ev)
            }
            Err(e) => {
                return Err(format!(
                    "malformed XML at byte {}: {e}",
                    reader.buffer_position()
                ));
            }
        };
        match ev {
            Event::Start(e) => {
                let el = element(&reader, ns, &e)?;
                stack.push(el);
            }
            Event::Empty(e) => {
                let el = element(&reader, ns, &e)?;
                close(&mut stack, &mut root, el)?;
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("unexpected end tag")?;
                close(&mut stack, &mut root, el)?;
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                } else if !t.xml10_content().trim().is_empty() {
                    return Err("text outside the root element".into());
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let piece = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match &*r.xml10_content() {
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "amp" => "&".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        other => return Err(format!("unknown entity &{other};")),
                    },
                    Err(e) => return Err(e.to_string()),
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&piece);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err("document ended inside an element".into());
    }
    root.ok_or_else(|| "empty document".to_owned())
}

/// Escapes text for element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `<p:name>text</p:name>` with the text escaped.
pub(crate) fn el(p: &str, name: &str, text: &str) -> String {
    if text.is_empty() {
        format!("<{p}:{name}></{p}:{name}>")
    } else {
        format!("<{p}:{name}>{}</{p}:{name}>", esc(text))
    }
}

/// `<p:name>text</p:name>`, or `<p:name i:nil="true"/>` for `None`.
pub(crate) fn opt(p: &str, name: &str, text: Option<&str>) -> String {
    match text {
        Some(t) => el(p, name, t),
        None => format!("<{p}:{name} i:nil=\"true\"/>"),
    }
}

/// A .NET `DateTime` as the DataContractSerializer writes a `Kind=Unspecified` value: no
/// offset, fractional seconds only when non-zero, at most 7 digits, trailing zeros cut.
/// The sandbox's values are UTC.
pub(crate) fn dt(t: NaiveDateTime) -> String {
    let (d, tm) = (t.date(), t.time());
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        d.year(),
        d.month(),
        d.day(),
        tm.hour(),
        tm.minute(),
        tm.second()
    );
    let ticks = (tm.nanosecond() % 1_000_000_000) / 100;
    if ticks > 0 {
        let frac = format!("{ticks:07}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s
}

/// [`dt`] of a UTC instant.
pub(crate) fn dt_utc(t: DateTime<Utc>) -> String {
    dt(t.naive_utc())
}

/// Midnight of a date, as [`dt`] writes it (`2026-05-20T00:00:00`).
pub(crate) fn day(d: NaiveDate) -> String {
    dt(d.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// Reads an `xs:dateTime`: with `Z` or an offset (converted to UTC) or without (taken as UTC),
/// or a bare date.
pub(crate) fn parse_dt(v: &str) -> Option<NaiveDateTime> {
    let v = v.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.naive_utc());
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, f) {
            return Some(t);
        }
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
}

/// Reads an `xs:duration` the way .NET writes a `TimeSpan` (`PT1H30M`, `P1DT2H`, `PT45.5S`,
/// `-PT1H`) into whole seconds. Years and months are refused: a `TimeSpan` has none.
pub(crate) fn parse_duration(v: &str) -> Option<i64> {
    let v = v.trim();
    let (neg, v) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let v = v.strip_prefix('P')?;
    let (date, time) = match v.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (v, None),
    };
    let mut secs = 0f64;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
                continue;
            }
            let (_, mult) = units.iter().find(|(u, _)| *u == c)?;
            let n: f64 = num.parse().ok()?;
            secs += n * mult;
            any = true;
            num.clear();
        }
        num.is_empty().then_some(())
    };
    take(date, &[('D', 86_400.0)])?;
    if let Some(t) = time {
        if t.is_empty() {
            return None;
        }
        take(t, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    if !any {
        return None;
    }
    let s = secs.round() as i64;
    Some(if neg { -s } else { s })
}

/// Whole seconds as .NET writes a `TimeSpan` (`PT1H30M`, `PT0S`, `P1DT2H`).
pub(crate) fn duration(secs: i64) -> String {
    if secs == 0 {
        return "PT0S".into();
    }
    let (sign, mut s) = if secs < 0 { ("-", -secs) } else { ("", secs) };
    let days = s / 86_400;
    s %= 86_400;
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = format!("{sign}P");
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    if h > 0 || m > 0 || sec > 0 {
        out.push('T');
        if h > 0 {
            out.push_str(&format!("{h}H"));
        }
        if m > 0 {
            out.push_str(&format!("{m}M"));
        }
        if sec > 0 {
            out.push_str(&format!("{sec}S"));
        }
    }
    out
}

/// A `double` as .NET writes it: `3`, `2.5`, `0.25`.
pub(crate) fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A decimal with four places, as the Reporting API writes amounts (`2.5000`).
pub(crate) fn dec4(v: f64) -> String {
    format!("{v:.4}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prefixes_defaults_and_nil() {
        let x = br#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>
            <Op xmlns="urn:x" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><a>1 &amp; 2</a><b i:nil="true"/></Op>
            </e:Body></e:Envelope>"#;
        let root = parse(x).unwrap();
        assert_eq!(
            (root.ns.as_str(), root.name.as_str()),
            (SOAP_ENV, "Envelope")
        );
        let op = &root.child(SOAP_ENV, "Body").unwrap().children[0];
        assert_eq!(op.text_of("urn:x", "a"), Some("1 & 2"));
        assert_eq!(op.text_of("urn:x", "b"), None);
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<p:a/>").is_err());
    }

    #[test]
    fn durations_round_trip_like_timespan() {
        assert_eq!(parse_duration("PT1H30M"), Some(5400));
        assert_eq!(parse_duration("P1DT2H"), Some(93_600));
        assert_eq!(parse_duration("PT45.5S"), Some(46));
        assert_eq!(parse_duration("PT"), None);
        assert_eq!(parse_duration("P1Y"), None);
        assert_eq!(duration(5400), "PT1H30M");
        assert_eq!(duration(0), "PT0S");
        assert_eq!(duration(93_600), "P1DT2H");
    }

    #[test]
    fn datetimes_trim_fractions_like_dotnet() {
        let t = parse_dt("2026-05-20T16:02:11.5500000").unwrap();
        assert_eq!(dt(t), "2026-05-20T16:02:11.55");
        let t = parse_dt("2026-05-20T18:02:11+02:00").unwrap();
        assert_eq!(dt(t), "2026-05-20T16:02:11");
        assert_eq!(num(3.0), "3");
        assert_eq!(num(2.5), "2.5");
    }
}
