//! How every benchmark prints: one line, or one JSON object with `--json`.

use serde_json::json;

pub(crate) fn report(json: bool, name: &str, fields: serde_json::Value, line: String) {
    if json {
        let mut v = fields;
        v["bench"] = json!(name);
        println!("{v}");
    } else {
        println!("{line}");
    }
}

pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}
