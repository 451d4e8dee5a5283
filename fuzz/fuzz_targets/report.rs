//! Report JSON (`parity.report.v1`): a report that parses must write back
//! out to JSON that parses to the same report.
#![no_main]
use libfuzzer_sys::fuzz_target;
use parity::format::report::Report;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz/report.json");
    let Ok(report) = Report::from_json(path, data) else { return };
    let text = report.to_json_pretty();
    let again = Report::from_json(path, text.as_bytes()).expect("a written report reads back");
    assert_eq!(again.to_json_pretty(), text, "report JSON round trip");
});
