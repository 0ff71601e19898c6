//! A minimal JSON object writer for the one hot path: serializing 2,000 Harvest time entries
//! per page. serde_json is compiled without optimizations in debug builds (which is how tests
//! and benchmarks built with `cargo test` run); writing through std's formatting machinery,
//! which ships optimized, is several times faster. Output equality with the serde derive is
//! checked in the Harvest tests.

use std::fmt::Write;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

/// Writes one JSON object's members in order; call [`Obj::end`] to close it.
pub(crate) struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    pub(crate) fn begin(out: &'a mut String) -> Self {
        out.push('{');
        Obj { out, first: true }
    }

    fn key(&mut self, k: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(k);
        self.out.push_str("\":");
        self.out
    }

    pub(crate) fn u64(&mut self, k: &str, v: u64) -> &mut Self {
        let _ = write!(self.key(k), "{v}");
        self
    }

    pub(crate) fn f64(&mut self, k: &str, v: f64) -> &mut Self {
        let out = self.key(k);
        if v.is_finite() {
            // `{:?}` keeps the `.0` of whole numbers, like serde_json.
            let _ = write!(out, "{v:?}");
        } else {
            out.push_str("null");
        }
        self
    }

    pub(crate) fn opt_f64(&mut self, k: &str, v: Option<f64>) -> &mut Self {
        match v {
            Some(v) => self.f64(k, v),
            None => self.null(k),
        }
    }

    pub(crate) fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.key(k).push_str(if v { "true" } else { "false" });
        self
    }

    pub(crate) fn null(&mut self, k: &str) -> &mut Self {
        self.key(k).push_str("null");
        self
    }

    pub(crate) fn str(&mut self, k: &str, v: &str) -> &mut Self {
        let out = self.key(k);
        push_str_value(out, v);
        self
    }

    pub(crate) fn opt_str(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.str(k, v),
            None => self.null(k),
        }
    }

    pub(crate) fn date(&mut self, k: &str, d: NaiveDate) -> &mut Self {
        let _ = write!(
            self.key(k),
            "\"{:04}-{:02}-{:02}\"",
            d.year(),
            d.month(),
            d.day()
        );
        self
    }

    /// Harvest's timestamp format: whole seconds, `Z`.
    pub(crate) fn ts(&mut self, k: &str, t: DateTime<Utc>) -> &mut Self {
        let (d, tm) = (t.date_naive(), t.time());
        let _ = write!(
            self.key(k),
            "\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z\"",
            d.year(),
            d.month(),
            d.day(),
            tm.hour(),
            tm.minute(),
            tm.second()
        );
        self
    }

    pub(crate) fn opt_ts(&mut self, k: &str, t: Option<DateTime<Utc>>) -> &mut Self {
        match t {
            Some(t) => self.ts(k, t),
            None => self.null(k),
        }
    }

    /// A nested object written by `f`.
    pub(crate) fn obj(&mut self, k: &str, f: impl FnOnce(&mut Obj<'_>)) -> &mut Self {
        let mut inner = Obj::begin(self.key(k));
        f(&mut inner);
        inner.end();
        self
    }

    pub(crate) fn end(self) {
        self.out.push('}');
    }
}

fn push_str_value(out: &mut String, v: &str) {
    let plain = v.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
    if plain {
        out.push('"');
        out.push_str(v);
        out.push('"');
    } else {
        // Rare (notes with quotes or newlines): let serde_json do the escaping.
        out.push_str(&serde_json::to_string(v).unwrap_or_else(|_| "\"\"".to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_json_with_escapes() {
        let mut s = String::new();
        let mut o = Obj::begin(&mut s);
        o.u64("id", 2_400_000_000_001)
            .f64("hours", 2.0)
            .f64("bad", f64::NAN)
            .str("notes", "say \"hi\"\n")
            .opt_str("none", None)
            .bool("ok", true)
            .obj("user", |u| {
                u.u64("id", 1).str("name", "Ada");
            });
        o.end();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id": 2_400_000_000_001u64, "hours": 2.0, "bad": null,
                "notes": "say \"hi\"\n", "none": null, "ok": true, "user": {"id": 1, "name": "Ada"}})
        );
        assert!(s.contains("\"hours\":2.0"));
    }
}
