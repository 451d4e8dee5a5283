//! For CI test viewers: JUnit XML.
//!
//! One `<testsuite>` per tensor, one `<testcase>` per stage (its metrics as
//! `<property>` elements). A gated stage that fails gets
//! `<failure message="max_abs 3.1e-3 > 1e-3">` with the detail block as text;
//! an optional stage that fails or is missing is `<skipped>` (reported, not
//! gated). An enabled hash mode adds a testcase per tensor, and a last suite,
//! `parity modes`, has one testcase per enabled mode, so the file's failures
//! agree with the exit code. Escaping is quick-xml's; characters XML 1.0
//! cannot carry at all are dropped.

use super::*;
use crate::check::ModeResult;
use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;
use std::io;

pub(super) fn render(o: &CheckOutcome) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    // Writing to a Vec cannot fail; the io::Result plumbing is quick-xml's.
    write(&mut w, o).expect("writing XML to memory");
    let mut s = String::from_utf8(w.into_inner()).expect("quick-xml writes UTF-8");
    s.push('\n');
    s
}

struct Case {
    name: String,
    classname: String,
    properties: Vec<(String, String)>,
    outcome: CaseOutcome,
}

enum CaseOutcome {
    Pass,
    Failure { message: String, detail: String },
    Skipped { message: String },
}

struct Suite {
    name: String,
    properties: Vec<(String, String)>,
    cases: Vec<Case>,
}

impl Suite {
    fn failures(&self) -> usize {
        self.cases.iter().filter(|c| matches!(c.outcome, CaseOutcome::Failure { .. })).count()
    }
    fn skipped(&self) -> usize {
        self.cases.iter().filter(|c| matches!(c.outcome, CaseOutcome::Skipped { .. })).count()
    }
}

fn suites(o: &CheckOutcome) -> Vec<Suite> {
    let mut suites: Vec<Suite> = o.tensors.iter().map(|t| tensor_suite(o, t)).collect();
    let modes: Vec<Case> = o
        .modes
        .all()
        .iter()
        .filter(|(_, m)| m.enabled)
        .map(|(flag, m)| mode_case(&format!("--{flag}"), "parity.modes", m))
        .collect();
    if !modes.is_empty() {
        suites.push(Suite { name: "parity modes".into(), properties: vec![], cases: modes });
    }
    // Where the run went wrong: properties a CI viewer shows beside the
    // verdicts (the onset's own failure, with --fail-on-onset, is a case).
    let mut properties = Vec::new();
    if let Some(d) = &o.first_divergence {
        properties.push(("first_divergence".to_string(), format!("{} · {}: {}", d.tensor, d.stage, d.failures.join("; "))));
    }
    if let Some(n) = &o.onset {
        let line = where_lines(o).into_iter().find(|l| l.contains("onset: ")).unwrap_or_default();
        properties.push(("onset".to_string(), line.trim_start_matches("warning: ").trim_start_matches("onset: ").to_string()));
        if o.fail_on_onset {
            let message = format!("--fail-on-onset: onset at {} · {}", n.tensor, n.stage);
            let case = Case { name: "--fail-on-onset".into(), classname: "parity.modes".into(), properties: vec![], outcome: CaseOutcome::Failure { message, detail: line } };
            properties.push(("fail_on_onset".into(), "true".into()));
            suites.push(Suite { name: "where the run went wrong".into(), properties, cases: vec![case] });
            return suites;
        }
    }
    if !properties.is_empty() {
        suites.push(Suite { name: "where the run went wrong".into(), properties, cases: vec![] });
    }
    suites
}

fn tensor_suite(o: &CheckOutcome, t: &TensorResult) -> Suite {
    let classname = format!("parity.{}", t.name);
    let mut cases: Vec<Case> = t
        .stages
        .iter()
        .map(|s| {
            let mut properties = vec![
                ("dtype".to_string(), dtype_cell(s)),
                ("shape".to_string(), shape_cell(s)),
                ("required".to_string(), s.tolerance.required.to_string()),
                ("tolerance".to_string(), tolerance_cell(s)),
            ];
            properties.extend(METRIC_HEADERS.iter().map(|h| h.to_string()).zip(metric_cells(s)));
            let outcome = match s.verdict {
                Verdict::Pass => CaseOutcome::Pass,
                Verdict::Fail if s.tolerance.required => CaseOutcome::Failure {
                    message: s.failures.iter().cloned().chain(explanation_line(s)).collect::<Vec<_>>().join("; "),
                    detail: detail_lines(s, o.top_diffs).join("\n"),
                },
                Verdict::Fail | Verdict::Missing => {
                    CaseOutcome::Skipped { message: format!("{}: {}", stage_verdict(s), s.failures.join("; ")) }
                }
            };
            Case { name: s.stage.clone(), classname: classname.clone(), properties, outcome }
        })
        .collect();
    let h = &t.hashes;
    if o.modes.hash.enabled {
        let outcome = if h.equal {
            CaseOutcome::Pass
        } else {
            CaseOutcome::Failure { message: hash_line(t), detail: String::new() }
        };
        cases.push(Case {
            name: "final_sha256 (--strict-hash)".into(),
            classname: classname.clone(),
            properties: vec![],
            outcome,
        });
    }
    if o.modes.historical_hash.enabled {
        let holds = h.left_matches_historical() && h.right_matches_historical();
        let message = o.modes.historical_hash.reasons.iter().find(|r| r.starts_with(&format!("{}:", t.name))).cloned();
        let outcome = match (holds, message) {
            (true, _) => CaseOutcome::Pass,
            (false, m) => CaseOutcome::Failure { message: m.unwrap_or_else(|| hash_line(t)), detail: String::new() },
        };
        cases.push(Case {
            name: "historical_final_sha256 (--strict-historical-hash)".into(),
            classname: classname.clone(),
            properties: vec![],
            outcome,
        });
    }
    let mut properties =
        vec![("operation".to_string(), t.operation.clone()), ("verdict".to_string(), tensor_verdict(t).to_string())];
    if let Some(f) = &t.first_failing_stage {
        properties.push(("first_failing_stage".into(), f.clone()));
    }
    properties.push(("final_hash".into(), hash_line(t)));
    Suite { name: t.name.clone(), properties, cases }
}

fn mode_case(name: &str, classname: &str, m: &ModeResult) -> Case {
    let outcome = if m.holds {
        CaseOutcome::Pass
    } else {
        CaseOutcome::Failure { message: m.reasons.first().cloned().unwrap_or_default(), detail: m.reasons.join("\n") }
    };
    Case { name: name.into(), classname: classname.into(), properties: vec![], outcome }
}

fn write(w: &mut Writer<Vec<u8>>, o: &CheckOutcome) -> io::Result<()> {
    let suites = suites(o);
    let tests: usize = suites.iter().map(|s| s.cases.len()).sum();
    let failures: usize = suites.iter().map(Suite::failures).sum();
    let skipped: usize = suites.iter().map(Suite::skipped).sum();
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.create_element("testsuites")
        .with_attribute(("name", "parity check"))
        .with_attribute(("tests", tests.to_string().as_str()))
        .with_attribute(("failures", failures.to_string().as_str()))
        .with_attribute(("errors", "0"))
        .with_attribute(("skipped", skipped.to_string().as_str()))
        .write_inner_content(|w| {
            for s in &suites {
                write_suite(w, s)?;
            }
            Ok(())
        })?;
    Ok(())
}

fn write_suite(w: &mut Writer<Vec<u8>>, s: &Suite) -> io::Result<()> {
    w.create_element("testsuite")
        .with_attribute(("name", clean(&s.name).as_str()))
        .with_attribute(("tests", s.cases.len().to_string().as_str()))
        .with_attribute(("failures", s.failures().to_string().as_str()))
        .with_attribute(("errors", "0"))
        .with_attribute(("skipped", s.skipped().to_string().as_str()))
        .write_inner_content(|w| {
            write_properties(w, &s.properties)?;
            for c in &s.cases {
                write_case(w, c)?;
            }
            Ok(())
        })?;
    Ok(())
}

fn write_case(w: &mut Writer<Vec<u8>>, c: &Case) -> io::Result<()> {
    w.create_element("testcase")
        .with_attribute(("name", clean(&c.name).as_str()))
        .with_attribute(("classname", clean(&c.classname).as_str()))
        .write_inner_content(|w| {
            write_properties(w, &c.properties)?;
            match &c.outcome {
                CaseOutcome::Pass => {}
                CaseOutcome::Failure { message, detail } => {
                    let el = w
                        .create_element("failure")
                        .with_attribute(("message", clean(message).as_str()))
                        .with_attribute(("type", "parity"));
                    if detail.is_empty() {
                        el.write_empty()?;
                    } else {
                        el.write_text_content(BytesText::new(&clean(detail)))?;
                    }
                }
                CaseOutcome::Skipped { message } => {
                    w.create_element("skipped").with_attribute(("message", clean(message).as_str())).write_empty()?;
                }
            }
            Ok(())
        })?;
    Ok(())
}

fn write_properties(w: &mut Writer<Vec<u8>>, props: &[(String, String)]) -> io::Result<()> {
    if props.is_empty() {
        return Ok(());
    }
    w.create_element("properties").write_inner_content(|w| {
        for (k, v) in props {
            w.create_element("property")
                .with_attribute(("name", clean(k).as_str()))
                .with_attribute(("value", clean(v).as_str()))
                .write_empty()?;
        }
        Ok(())
    })?;
    Ok(())
}

/// XML 1.0 cannot carry most control characters even escaped; tensor names
/// come from user files, so drop them rather than write an unparsable file.
fn clean(s: &str) -> String {
    s.chars().filter(|&c| matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')).collect()
}
